"""The client's own network layer (``kizen_sync.client.transport``) over real loopback sockets.

The other client tests inject an httpx transport; these run the default path (sharded
``LeanAsyncClient`` + ``AsyncioBackend``) against a small asyncio HTTP server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpcore
import httpx
import pytest
from client_fakes import make_settings

from kizen_sync.client import KizenClient
from kizen_sync.client.session import _Stop
from kizen_sync.client.transport import AsyncioBackend, make_transport
from kizen_sync.errors import TransportError

pytestmark = pytest.mark.anyio

RECORD = "7f1e2d3c-0000-4000-8000-000000000001"
ENTRIES = [{"name": "employees", "value": 5}]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Seen"], Awaitable[None]]


class Seen:
    """What the server received: raw first reads, request lines, headers per request."""

    def __init__(self) -> None:
        self.first_reads: list[bytes] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0


def local(url: str, **overrides: object):
    """Settings for the loopback server (no proxies from the environment)."""
    return make_settings(base_url=url, trust_env=False, **overrides)


async def read_request(
    reader: asyncio.StreamReader, seen: Seen
) -> tuple[str, dict[str, str], bytes] | None:
    """Read one HTTP/1.1 request; ``None`` at end of stream."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await reader.read(65536)
        if not chunk:
            return None
        if not head:
            seen.first_reads.append(chunk)
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = rest
    while len(body) < length:
        body += await reader.read(length - len(body))
    request = (lines[0], headers, body)
    seen.requests.append(request)
    return request


def respond(
    writer: asyncio.StreamWriter, payload: object, *, status: str = "200 OK", extra: str = ""
) -> None:
    body = json.dumps(payload).encode()
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def echo_record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen):
    while await read_request(reader, seen) is not None:
        respond(writer, {"id": RECORD, "fields": {}})
        await writer.drain()


@asynccontextmanager
async def serve(handler: Handler = echo_record) -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            await handler(reader, writer, seen)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


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

    async with (
        serve(one_per_connection) as (url, seen),
        KizenClient(local(url, max_in_flight=1)) as kizen,
    ):
        await kizen.patch_record("accounts", RECORD, ENTRIES)
        await asyncio.sleep(0.1)  # the server's FIN arrives; the pool must notice it
        await kizen.patch_record("accounts", RECORD, ENTRIES)
        assert kizen.stats.retries == 0
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


async def test_backend_read_timeout_and_end_of_stream():
    async def slow_then_close(reader, writer, seen):
        await reader.read(100)
        await asyncio.sleep(0.3)
        writer.write(b"late")
        await writer.drain()

    async with serve(slow_then_close) as (url, _seen):
        port = int(url.rsplit(":", 1)[1])
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"hello")
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.05)
        assert await stream.read(100, timeout=5) == b"late"
        assert await stream.read(100, timeout=5) == b""  # the server hung up
        assert stream.get_extra_info("is_readable")
        await stream.aclose()
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more")


def test_transport_pool_runs_on_the_asyncio_backend():
    # Guards the one private attribute touched (httpx is pinned <0.29).
    transport = make_transport(verify=True, trust_env=False, limits=httpx.Limits())
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, AsyncioBackend)


def test_retry_budget_counts_time_spent_before_tenacity_started():
    rs = SimpleNamespace(outcome=None, seconds_since_start=0.0, upcoming_sleep=0.2)
    assert _Stop(8, 1.0)(rs) is False  # type: ignore[arg-type]
    assert _Stop(8, 1.0, offset_s=0.9)(rs) is True  # type: ignore[arg-type]
