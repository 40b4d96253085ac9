"""Errors on the way to Kizen say what happened: the certificate problem and host of a failed
TLS handshake, the host and port of a refused connection, the host that does not resolve.

Real sockets only: the loopback HTTPS server with a certificate from a CA the client does not
trust, a port nothing listens on, a name under ``.invalid`` (reserved, never resolves).
"""

from __future__ import annotations

import socket
import ssl

import pytest
from loopback import serve

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.errors import TransportError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(base_url: str) -> ClientSettings:
    return ClientSettings(
        base_url=base_url,
        api_key="never-shown",
        user_id="916dac1b-5640-4268-9324-06132f342488",
        business_id="5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
        max_attempts=1,
    )


async def _error(base_url: str) -> TransportError:
    async with KizenClient(_settings(base_url)) as kizen:
        with pytest.raises(TransportError) as info:
            await kizen.list_objects()
    return info.value


async def test_a_failed_tls_handshake_names_the_certificate_problem_and_the_host(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's certificate comes from a throwaway CA the client was never told to trust.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with serve(tls=server_tls) as (url, seen):
        error = await _error(url)
    assert "TLS handshake with 127.0.0.1 failed: certificate verify failed" in str(error)
    assert "unable to get local issuer certificate" in str(error)
    assert "SSL_CERT_FILE" in str(error)  # the fix when a proxy re-signs TLS
    assert error.host == "127.0.0.1"
    assert error.tls is True
    assert "never-shown" not in str(error)
    assert seen.requests == []


async def test_a_refused_connection_names_host_and_port() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    error = await _error(f"http://127.0.0.1:{port}")
    assert f"connection to 127.0.0.1:{port} refused" in str(error)
    assert (error.host, error.port) == ("127.0.0.1", port)
    assert error.unsent is True  # never reached a server: safe to retry anything


async def test_a_host_that_does_not_resolve_is_named() -> None:
    error = await _error("https://kizen.invalid")
    assert "cannot resolve host kizen.invalid" in str(error)
