"""Fixtures of the client tests."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from client_fakes import FakeKizen, make_settings

from kizen_sync.client import ClientSettings


@pytest.fixture
def settings() -> ClientSettings:
    return make_settings()


@pytest.fixture
def fake() -> FakeKizen:
    return FakeKizen()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the TLS tests."""
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """Server side of TLS: a certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def trust(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the client trust ``ca`` the way a user would: ``SSL_CERT_FILE``, no proxies."""
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return pem
