"""The client's default network path over real TLS, as real Kizen is served (HTTPS only).

A local HTTPS server (``loopback.py``) presents a certificate made for the test by a throwaway
CA (``trustme``); the client trusts that CA the way a user would, through ``SSL_CERT_FILE``.
Each test judges from the server's side what arrived (requests, connections, TLS versions)
and from the user's side what the client said.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

import pytest
import trustme
from client_fakes import make_settings
from loopback import ENTRIES, RECORD, serve

from kizen_sync.client import KizenClient
from kizen_sync.errors import TransportError

pytestmark = pytest.mark.anyio


def tls_settings(url: str, **overrides: object):
    """Client settings for the loopback HTTPS server; trust comes from the environment."""
    return make_settings(base_url=url, trust_env=True, max_attempts=1, **overrides)


async def test_patch_over_tls_completes_the_handshake_and_verifies_the_certificate(
    server_tls, trust
):
    async with serve(tls=server_tls) as (url, seen), KizenClient(tls_settings(url)) as kizen:
        record = await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert url.startswith("https://")
    assert record.id == RECORD
    line, headers, body = seen.requests[0]
    assert line == f"PATCH /api/records/accounts/{RECORD} HTTP/1.1"
    assert headers["x-api-key"]
    assert json.loads(body) == {"fields": ENTRIES}
    assert seen.tls_versions
    assert all(v.startswith("TLSv1.") for v in seen.tls_versions)
    # Head and body were written together through TLS too: one read holds the body.
    assert seen.first_reads[0].endswith(body)


async def test_a_certificate_from_an_unknown_authority_is_refused_before_anything_is_sent(
    server_tls, tmp_path, monkeypatch
):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))  # the client trusts another CA only
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    async with serve(tls=server_tls) as (url, seen), KizenClient(tls_settings(url)) as kizen:
        with pytest.raises(TransportError) as info:
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert info.value.unsent  # refused during the handshake: safe to retry anything
    assert "certificate verify failed" in str(info.value)
    assert seen.requests == []


async def test_a_certificate_for_another_host_name_is_refused(ca, trust):
    wrong = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("kizen.example").configure_cert(wrong)  # trusted CA, other name
    async with serve(tls=wrong) as (url, seen), KizenClient(tls_settings(url)) as kizen:
        with pytest.raises(TransportError) as info:
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert info.value.unsent
    assert "mismatch" in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert seen.requests == []


async def test_verification_off_reaches_an_untrusted_server_and_says_so(server_tls, caplog):
    with caplog.at_level(logging.WARNING, logger="kizen_sync.client"):
        async with (
            serve(tls=server_tls) as (url, seen),
            KizenClient(make_settings(base_url=url, verify_tls=False, trust_env=False)) as kizen,
        ):
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert len(seen.requests) == 1
    assert "TLS certificate verification is OFF" in caplog.text


async def test_keep_alive_one_handshake_for_many_sequential_calls(server_tls, trust):
    async with (
        serve(tls=server_tls) as (url, seen),
        KizenClient(tls_settings(url, max_in_flight=1)) as kizen,
    ):
        for _ in range(20):
            await kizen.patch_record("accounts", RECORD, ENTRIES)
    assert len(seen.requests) == 20
    assert seen.connections == 1
    assert len(seen.tls_versions) == 1


async def test_concurrent_calls_share_a_bounded_number_of_tls_connections(server_tls, trust):
    async with (
        serve(tls=server_tls) as (url, seen),
        KizenClient(tls_settings(url, max_in_flight=8)) as kizen,
    ):
        await asyncio.gather(*(kizen.patch_record("accounts", RECORD, ENTRIES) for _ in range(60)))
        assert kizen.stats.requests == 60
    assert len(seen.requests) == 60
    assert seen.connections <= 8
