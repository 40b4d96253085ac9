from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kizen_sync.emulator import Emulator

COMPANY_ACME = "7f1e2d3c-0000-4000-8000-000000000001"
COMPANY_GLOBEX = "7f1e2d3c-0000-4000-8000-000000000002"
ALEX = "916dac1b-5640-4268-9324-06132f342488"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emu() -> Emulator:
    return Emulator.demo(
        api_key="test-key", user_id=ALEX, business_id="5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
    )


def headers(emu: Emulator, key: str | None = None) -> dict[str, str]:
    api_key, user, business = emu.credentials
    return {"X-API-KEY": key or api_key, "X-USER-ID": user, "X-BUSINESS-ID": business}


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app),
        base_url="http://kizen.test",
        headers=headers(emu),
    ) as c:
        yield c


def field(body: dict, name: str) -> dict | None:
    """The response entry of the field with this API name (fields are keyed by UUID)."""
    for entry in body["fields"].values():
        if entry["name"] == name:
            return entry
    return None


def value(body: dict, name: str):
    entry = field(body, name)
    return None if entry is None else entry.get("value")
