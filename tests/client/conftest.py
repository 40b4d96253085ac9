"""Fixtures of the client tests."""

from __future__ import annotations

import pytest
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
