"""KizenClient against the kizen-sync emulator: in-process (ASGI) and over real HTTP.

Retries are proven by the emulator's request log (more requests than calls, every call
succeeded), not by mocks.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from client_fakes import make_settings

from kizen_sync.client import KizenClient, capture_attempts
from kizen_sync.errors import (
    AuthenticationError,
    KizenValidationError,
    NotFoundError,
    PermissionDeniedError,
)

emulator = pytest.importorskip("kizen_sync.emulator")
if not hasattr(emulator, "Emulator"):
    pytest.skip("kizen_sync.emulator does not export Emulator yet", allow_module_level=True)
Emulator = emulator.Emulator

pytestmark = pytest.mark.anyio


@pytest.fixture
def emu():
    return Emulator.demo()


def _settings(emu, base_url: str = "http://kizen.local", **overrides):
    api_key, user_id, business_id = emu.credentials
    options = {"api_key": api_key, "user_id": user_id, "business_id": business_id, **overrides}
    return make_settings(base_url=base_url, **options)


def _client(emu, **overrides) -> KizenClient:
    return KizenClient(_settings(emu, **overrides), transport=httpx.ASGITransport(app=emu.app))


async def test_record_lifecycle_in_process(emu):
    async with _client(emu) as kizen:
        created = await kizen.upsert_record(
            "accounts", "Bench Co", [{"name": "employees", "value": 12}]
        )
        assert created.action == "created"
        again = await kizen.upsert_record(
            "accounts", "Bench Co", [{"name": "employees", "value": 13}]
        )
        assert (again.action, again.record.id) == ("updated", created.record.id)
        record_id = created.record.id

        patched = await kizen.patch_record(
            "accounts", record_id, [{"name": "employees", "value": 40}], return_all_fields=True
        )
        assert patched.value("employees") == 40
        assert patched.value("name") == "Bench Co"
        assert (await kizen.get_record("accounts", record_id)).value("employees") == 40
        found = await kizen.lookup_record("accounts", "Bench Co")
        assert found is not None
        assert found.id == record_id

        await kizen.archive_record("accounts", record_id)
        assert await kizen.lookup_record("accounts", "Bench Co") is None
        with pytest.raises(NotFoundError):
            await kizen.get_record("accounts", record_id)
        with pytest.raises(NotFoundError):
            await kizen.archive_record("accounts", record_id)
        assert (await kizen.unarchive_record("accounts", record_id)).id == record_id


async def test_schema_tags_and_paging_in_process(emu):
    for i in range(7):
        emu.create_record("companies_company", {"name": f"Paged {i}"})
    async with _client(emu) as kizen:
        schema = await kizen.get_object_schema("accounts")
        assert schema.field("tier").option_by_label("Gold") is not None
        labels = await kizen.list_dynamic_tags("accounts", schema.field("labels").id)
        assert {t.name for t in labels} >= {"Strategic", "At Risk", "Expansion", "Renewal"}
        contacts = await kizen.get_object_schema("client_client")
        tags = await kizen.list_dynamic_tags("client_client", contacts.field("tags").id)
        assert {t.name for t in tags} >= {"VIP", "Newsletter", "Churn Risk", "Partner", "Beta"}
        names = [
            r.value("name") async for r in kizen.iter_records("companies_company", page_size=3)
        ]
        assert {f"Paged {i}" for i in range(7)} <= set(names)
        assert len(names) == len(set(names))
        objects = {o.name for o in await kizen.list_objects()}
        assert {"accounts", "client_client", "companies_company"} <= objects


async def test_validation_errors_name_the_entry(emu):
    record_id = emu.create_record("accounts", {"name": "Valid Co"})
    entries = [{"name": "employees", "value": 5}, {"name": "no_such_field", "value": 1}]
    async with _client(emu) as kizen:
        with pytest.raises(KizenValidationError) as info:
            await kizen.patch_record("accounts", record_id, entries)
    assert [fe.field for fe in info.value.field_errors] == ["no_such_field"]


async def test_read_only_key_cannot_write(emu):
    record_id = emu.create_record("accounts", {"name": "Locked Co"})
    async with _client(emu, api_key="demo-readonly-key") as kizen:
        with pytest.raises(PermissionDeniedError):
            await kizen.patch_record("accounts", record_id, [{"name": "employees", "value": 1}])


async def test_injected_server_errors_are_retried_until_every_patch_lands(emu):
    ids = [emu.create_record("accounts", {"name": f"Flaky {i}"}) for i in range(30)]
    emu.set_knobs(error_rate=0.3, seed=7)
    async with _client(emu, max_attempts=20) as kizen:
        results = await asyncio.gather(
            *(
                kizen.patch_record("accounts", rid, [{"name": "employees", "value": 7}])
                for rid in ids
            )
        )
        retries = kizen.stats.retries
    assert all(r.id == rid for r, rid in zip(results, ids, strict=True))
    patches = emu.request_log.total(method="PATCH")
    assert patches > len(ids)
    assert retries == patches - len(ids)
    emu.set_knobs(error_rate=0.0)
    async with _client(emu) as kizen:
        assert {(await kizen.get_record("accounts", rid)).value("employees") for rid in ids} == {7}


async def test_rate_limit_storm_is_waited_out(emu):
    ids = [emu.create_record("accounts", {"name": f"Busy {i}"}) for i in range(20)]
    emu.set_knobs(rate_limit_rps=5, seed=3)
    async with _client(emu, max_attempts=2, max_retry_after_s=2, retry_budget_s=30) as kizen:
        with capture_attempts() as attempts:
            await asyncio.gather(
                *(
                    kizen.patch_record("accounts", rid, [{"name": "employees", "value": 1}])
                    for rid in ids
                )
            )
        limited = kizen.stats.rate_limited
    # Far more 429s than max_attempts would allow, and still every call succeeded.
    assert limited > 2
    assert emu.request_log.total(method="PATCH", status=429) == limited
    assert emu.request_log.total(method="PATCH", status=200) == len(ids)
    assert sum(a.status == 200 for a in attempts) == len(ids)


async def test_dropped_connections_over_real_http_are_retried(emu):
    ids = [emu.create_record("accounts", {"name": f"Dropped {i}"}) for i in range(20)]
    emu.set_knobs(drop_rate=0.25, seed=11)
    with emu.serve(host="127.0.0.1", port=0) as base_url, capture_attempts() as attempts:
        async with KizenClient(_settings(emu, base_url=base_url, max_attempts=20)) as kizen:
            for rid in ids:
                await kizen.patch_record("accounts", rid, [{"name": "employees", "value": 2}])
            stats = kizen.stats
    assert stats.by_status[None] > 0
    assert sum(a.status is None for a in attempts) == stats.by_status[None]
    assert sum(a.status == 200 for a in attempts) == len(ids)


async def test_api_key_stays_out_of_debug_logs_over_real_http(emu, caplog):
    canary = "canary-key-real-http-7c2e"
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "kizen_sync"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        async with KizenClient(_settings(emu, base_url=base_url, api_key=canary)) as kizen:
            with pytest.raises(AuthenticationError) as info:
                await kizen.get_object_schema("accounts")
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG really on
    assert canary not in caplog.text
    assert canary not in str(info.value)
    assert canary not in repr(info.value)
