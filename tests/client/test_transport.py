"""The client's own network layer (``kizen_sync.client.transport``) over real loopback sockets.

The other client tests inject an httpx transport; these run the default path (sharded
``LeanAsyncClient`` + ``PoolTransport`` on ``AsyncioBackend``) against a small asyncio HTTP
server (``loopback.py``). TLS has its own file (``test_transport_tls.py``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from types import SimpleNamespace

import httpx
import pytest
from client_fakes import make_settings
from loopback import ENTRIES, RECORD, read_request, respond, serve

from kizen_sync.client import KizenClient
from kizen_sync.client.network import AsyncioStream
from kizen_sync.client.session import _Stop
from kizen_sync.client.transport import PoolTransport
from kizen_sync.errors import TransportError

pytestmark = pytest.mark.anyio


def local(url: str, **overrides: object):
    """Settings for the loopback server (no proxies from the environment)."""
    return make_settings(base_url=url, trust_env=False, **overrides)


async def test_patch_over_a_real_socket_sends_head_and_body_in_one_segment():
    async with serve() as (url, seen), KizenClient(local(url)) as kizen:
        record = await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert record.id == RECORD
    line, headers, body = seen.requests[0]
    assert line == f"PATCH /api/records/accounts/{RECORD} HTTP/1.1"
    assert headers["x-api-key"]
    assert json.loads(body) == {"fields": ENTRIES}
    # Head and body were written together: the server's first read holds the body too.
    assert seen.first_reads[0].endswith(body)


async def test_connections_are_reused_and_many_calls_run_concurrently():
    async with serve() as (url, seen):
        settings = local(url, max_in_flight=8)
        async with KizenClient(settings) as kizen:
            calls = (kizen.patch_record("accounts", RECORD, ENTRIES) for _ in range(40))
            await asyncio.gather(*calls)
            assert kizen.stats.requests == 40
    assert len(seen.requests) == 40
    assert seen.connections <= 8


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async def one_per_connection(reader, writer, seen):
        if await read_request(reader, seen) is not None:
            respond(writer, {"id": RECORD, "fields": {}})  # keep-alive by default, then hang up
            await writer.drain()

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    transport = PoolTransport(ssl_context=ssl.create_default_context(), limits=limits)
    async with (
        serve(one_per_connection) as (url, seen),
        httpx.AsyncClient(transport=transport) as http,
    ):
        first = await http.patch(f"{url}/api/records/accounts/{RECORD}", json={"fields": ENTRIES})
        stream = first.extensions["network_stream"]
        # Wait (bounded only against a hang) until the server's FIN reached this end: the
        # pool must then see the idle connection as readable, i.e. expired.
        for _ in range(6000):
            if stream.get_extra_info("is_readable"):
                break
            await asyncio.sleep(0.01)
        assert stream.get_extra_info("is_readable")
        # No retry layer here: reusing the dead connection would raise instead.
        second = await http.patch(f"{url}/api/records/accounts/{RECORD}", json={"fields": ENTRIES})
    assert (first.status_code, second.status_code) == (200, 200)
    assert seen.connections == 2


async def test_a_silent_server_times_out_as_a_transport_error():
    async def silent(reader, writer, seen):
        await read_request(reader, seen)
        await asyncio.sleep(5)

    async with serve(silent) as (url, _seen):
        settings = local(url, timeout_s=0.2, max_attempts=1)
        async with KizenClient(settings) as kizen:
            with pytest.raises(TransportError) as info:
                await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert "ReadTimeout" in str(info.value)
    assert not info.value.unsent


async def test_a_refused_connection_is_an_unsent_transport_error():
    async with serve() as (url, _seen):
        pass  # the port is closed again
    settings = local(url, max_attempts=1)
    async with KizenClient(settings) as kizen:
        with pytest.raises(TransportError) as info:
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert info.value.unsent


async def test_cookies_set_by_the_server_are_still_sent_back():
    async def sets_cookie(reader, writer, seen):
        first = True
        while await read_request(reader, seen) is not None:
            extra = "Set-Cookie: AWSALB=sticky; Path=/\r\n" if first else ""
            respond(writer, {"id": RECORD, "fields": {}}, extra=extra)
            await writer.drain()
            first = False

    async with (
        serve(sets_cookie) as (url, seen),
        KizenClient(local(url, max_in_flight=1)) as kizen,
    ):
        await kizen.patch_record("accounts", RECORD, ENTRIES)
        await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert "cookie" not in seen.requests[0][1]
    assert seen.requests[1][1]["cookie"] == "AWSALB=sticky"


async def test_proxies_from_the_environment_are_still_used(monkeypatch):
    async with serve() as (proxy_url, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = make_settings(base_url="http://kizen.invalid", trust_env=True)
        async with KizenClient(settings) as kizen:
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    # A forward proxy receives the absolute URL in the request line.
    assert seen.requests[0][0].startswith("PATCH http://kizen.invalid/api/records/accounts/")


async def test_the_default_path_runs_on_the_asyncio_backend():
    limits = httpx.Limits()
    transport = PoolTransport(ssl_context=ssl.create_default_context(), limits=limits)
    async with serve() as (url, _seen), httpx.AsyncClient(transport=transport) as http:
        response = await http.get(f"{url}/api/records/accounts/{RECORD}")
        assert isinstance(response.extensions["network_stream"], AsyncioStream)
        assert response.json()["id"] == RECORD


def test_retry_budget_counts_time_spent_before_tenacity_started():
    rs = SimpleNamespace(outcome=None, seconds_since_start=0.0, upcoming_sleep=0.2)
    assert _Stop(8, 1.0)(rs) is False  # type: ignore[arg-type]
    assert _Stop(8, 1.0, offset_s=0.9)(rs) is True  # type: ignore[arg-type]
