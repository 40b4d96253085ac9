"""Auth, fault knobs (latency, 429, 5xx, drops), the request log, admin API, persistence."""

from __future__ import annotations

import time

import httpx
import pytest

from kizen_sync.emulator import DEMO_READONLY_KEY, Emulator, Knobs
from tests.emulator.conftest import COMPANY_ACME, headers, value

pytestmark = pytest.mark.anyio

ACME_URL = f"/api/records/companies_company/{COMPANY_ACME}"
RECORD_ROUTE = "/api/records/{object_identifier}/{entity_id}"


async def test_missing_and_wrong_credentials_401(client, emu):
    r = await client.get(ACME_URL, headers={"X-API-KEY": ""})
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")
    r = await client.get(ACME_URL, headers={"x-api-key": "wrong"})
    assert (r.status_code, r.json()["code"]) == (401, "authentication_failed")
    r = await client.get(ACME_URL, headers={"X-BUSINESS-ID": "someone-else"})
    assert r.status_code == 401
    lower = {k.lower(): v for k, v in headers(emu).items()}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app), base_url="http://kizen.test"
    ) as bare:
        assert (await bare.get(ACME_URL, headers=lower)).status_code == 200


async def test_readonly_key_reads_but_cannot_write(client, emu):
    ro = headers(emu, DEMO_READONLY_KEY)
    r = await client.get(ACME_URL, headers=ro)
    assert r.status_code == 200
    assert r.json()["access"]["edit"] is False
    r = await client.patch(ACME_URL, headers=ro, json={"fields": []})
    assert (r.status_code, r.json()["code"]) == (403, "permission_required")
    assert (await client.post("/api/records/accounts/search", headers=ro)).status_code == 200


def test_credentials_from_env_then_defaults(monkeypatch):
    monkeypatch.setenv("KIZEN_API_KEY", "env-key")
    monkeypatch.delenv("KIZEN_USER_ID", raising=False)
    emu = Emulator.demo()
    assert emu.credentials[0] == "env-key"
    assert emu.api_key_source == "env"
    assert emu.credentials[1] == "916dac1b-5640-4268-9324-06132f342488"
    assert Emulator.demo(api_key="opt").credentials[0] == "opt"


async def test_latency_knob_delays_api_responses(client, emu):
    emu.set_knobs(latency_ms=60)
    started = time.perf_counter()
    await client.get(ACME_URL)
    assert time.perf_counter() - started >= 0.06


async def test_rate_limit_429_with_retry_after(client, emu):
    emu.set_knobs(rate_limit_rps=3)
    statuses = [(await client.get(ACME_URL)) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert 1 <= len(limited) <= 5  # a window boundary may fall inside the burst
    assert limited[0].headers["retry-after"] == "1"
    assert emu.request_log.total(status=429) == len(limited)


async def test_error_rate_injects_5xx_before_processing(client, emu):
    emu.set_knobs(error_rate=1.0, seed=7)
    r = await client.patch(ACME_URL, json={"fields": [{"name": "name", "value": "Changed"}]})
    assert r.status_code in (500, 502, 503)
    emu.set_knobs(error_rate=0.0)
    assert value((await client.get(ACME_URL)).json(), "name") == "Acme Corp"


async def test_drop_in_process_is_a_transport_error_and_half_apply(client, emu):
    emu.set_knobs(drop_rate=1.0, seed=3)
    for i in range(20):
        with pytest.raises(httpx.TransportError):
            await client.post("/api/records/accounts/upsert", json={"lookup_value": f"D{i}"})
    emu.set_knobs(drop_rate=0.0)
    applied = len(emu.records("accounts"))
    assert 3 <= applied <= 17
    assert emu.request_log.total(status=0) == 20


def test_drop_over_real_http_and_knobs_via_admin_endpoint():
    emu = Emulator.demo()
    with emu.serve(port=0) as base, httpx.Client(base_url=base, headers=headers(emu)) as http:
        assert http.get(ACME_URL).status_code == 200
        r = http.patch("/_emulator/knobs", json={"drop_rate": 1, "seed": 1})
        assert r.json()["drop_rate"] == 1
        assert http.patch("/_emulator/knobs", json={"drop_rate": 2}).status_code == 400
        assert http.patch("/_emulator/knobs", json={"bogus": 1}).status_code == 400
        with pytest.raises(httpx.TransportError):
            http.get(ACME_URL)
        http.patch("/_emulator/knobs", json={"drop_rate": 0})
        assert http.get(ACME_URL).status_code == 200
        log = http.get("/_emulator/requests").json()
        assert {"method": "GET", "route": RECORD_ROUTE, "status": 200, "count": 2} in log["counts"]
        assert log["total"] == 3
        assert http.post("/_emulator/reset-log").json()["total"] == 0
        dump = http.get("/_emulator/records/companies_company").json()
        assert [value(x, "name") for x in dump] == ["Acme Corp", "Globex", "Initech"]


async def test_request_log_counts_by_route_template(client, emu):
    await client.get(ACME_URL)
    await client.get(f"/api/records/companies_company/{COMPANY_ACME[:-1]}9")
    await client.get("/api/nope")
    assert emu.request_log.counts() == {
        ("GET", RECORD_ROUTE, 200): 1,
        ("GET", RECORD_ROUTE, 404): 1,
        ("GET", "(unmatched)", 404): 1,
    }
    assert emu.request_log.total(method="GET", route=RECORD_ROUTE) == 2
    emu.request_log.reset()
    assert emu.request_log.total() == 0


def test_knob_validation():
    with pytest.raises(ValueError, match="error_rate"):
        Knobs().updated({"error_rate": -0.1})
    with pytest.raises(ValueError, match="rate_limit_rps"):
        Knobs().updated({"rate_limit_rps": 0})


def test_state_survives_restart(tmp_path):
    state = tmp_path / "state.sqlite"
    emu = Emulator.demo(state_path=state)
    rid = emu.create_record("accounts", {"name": "Persisted", "labels": [{"name": "Renewal"}]})
    emu.create_record("accounts", {"name": "Gone"})
    gone = emu.records("accounts")[1]["id"]
    emu.service.archive(emu.service.object("accounts"), emu.service.store.by_id[gone])
    emu.close()
    again = Emulator.demo(state_path=state)
    assert value(again.get_record("accounts", rid), "labels")[0]["name"] == "Renewal"
    assert [r["id"] for r in again.records("accounts")] == [rid]
    assert len(again.records("companies_company")) == 3
    with pytest.raises(ValueError, match=r"400.*conflict"):
        again.create_record("accounts", {"name": "gone"})
    again.close()
