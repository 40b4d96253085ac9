"""The emulator is at least as strict as Kizen where a source shows what Kizen does.

Pipelines and stages, uploaded files, the default display_name field, statuses of archive
conflicts, strict mode (refuses every shape the evidence does not confirm or document), the
``ignored_fields`` knob, and the validating proxy that grades every request.
"""

from __future__ import annotations

import httpx
import pytest

from kizen_sync.emulator import Emulator, Knobs
from kizen_sync.emulator.evidence import Tier, known_route
from tests.emulator.conftest import ALEX, headers, value

pytestmark = pytest.mark.anyio

DEALS = "11111111-1111-4111-8111-111111111111"
PROSPECTING = "aaaaaaaa-0000-4000-8000-000000000001"
NEGOTIATION = "aaaaaaaa-0000-4000-8000-000000000002"
UPLOADED = "f11e0000-0000-4000-8000-000000000001"


def _client(emu: Emulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app),
        base_url="http://kizen.test",
        headers=headers(emu),
    )


async def test_a_pipeline_record_starts_in_the_first_stage_and_moves_only_through_move(client):
    stages = (await client.get(f"/api/pipelines/{DEALS}/stages")).json()
    assert [s["name"] for s in stages] == ["Prospecting", "Negotiation", "Closed Won"]
    r = await client.post(
        "/api/records/deals/add", json={"fields": [{"name": "name", "value": "Big deal"}]}
    )
    assert r.status_code == 201
    deal = r.json()
    assert value(deal, "stage") == {
        "id": PROSPECTING,
        "name": "Prospecting",
        "status": "open",
        "order": 0,
    }
    r = await client.patch(
        f"/api/records/deals/{deal['id']}",
        json={"fields": [{"name": "stage", "value": {"id": NEGOTIATION}}]},
    )
    assert r.status_code == 400
    assert "/move" in r.json()["fields"][0]["value"][0]
    r = await client.patch(f"/api/records/deals/{deal['id']}/move", json={"stage_id": NEGOTIATION})
    assert r.status_code == 200
    assert value(r.json(), "stage")["name"] == "Negotiation"
    r = await client.patch(f"/api/records/deals/{deal['id']}/move", json={"stage_id": "nope"})
    assert r.status_code == 400
    assert (await client.get(f"/api/pipelines/{DEALS}/stages/x")).status_code == 404


async def test_files_are_arrays_of_uploaded_ids(client, emu):
    uploaded = (await client.post("/_emulator/files", json={"name": "signed.pdf"})).json()["id"]
    base = [{"name": "name", "value": "Files Inc"}]
    for bad, code in (
        (uploaded, "not_a_list"),  # a bare id is not Kizen's shape
        (["9d9e6a1e-9a55-4d0c-9e9f-3d2c1b0a9f8e"], "does_not_exist"),  # never uploaded
        ([uploaded, UPLOADED], "invalid"),  # a single-file field holds one
    ):
        r = await client.post(
            "/api/records/accounts/add",
            json={"fields": [*base, {"name": "contract", "value": bad}]},
        )
        assert r.status_code == 400
        assert r.json()["fields"][1]["code"] == [code]
    r = await client.post(
        "/api/records/accounts/add",
        json={"fields": [*base, {"name": "contract", "value": [uploaded]}]},
    )
    assert value(r.json(), "contract") == [{"id": uploaded, "name": "signed.pdf"}]


async def test_display_name_is_derived_and_a_write_to_it_is_not_applied(client):
    r = await client.post(
        "/api/records/accounts/add",
        json={
            "fields": [
                {"name": "name", "value": "Named Co"},
                {"name": "display_name", "value": "Something else"},
            ]
        },
    )
    assert r.status_code == 201
    assert value(r.json(), "display_name") == "Named Co"


async def test_unarchive_of_a_live_record_is_a_400(client):
    rid = (
        await client.post(
            "/api/records/accounts/add", json={"fields": [{"name": "name", "value": "Live"}]}
        )
    ).json()["id"]
    r = await client.patch(f"/api/records/accounts/{rid}/unarchive")
    assert r.status_code == 400


async def test_contacts_serve_tags_only_from_the_client_route(client, emu):
    contacts = emu.business.object("client_client")
    tags = contacts.by_name["tags"].id
    assert (await client.get(f"/api/client/fields/{tags}/tags")).status_code == 200
    r = await client.get(f"/api/pipelines/{contacts.id}/fields/{tags}/tags")
    assert r.status_code == 404


async def test_ignored_fields_are_accepted_and_not_applied(emu):
    emu.set_knobs(ignored_fields=["tier"])
    gold = emu.business.object("accounts").by_name["tier"].spec["options"][0]["id"]
    async with _client(emu) as client:
        r = await client.post(
            "/api/records/accounts/add",
            json={
                "fields": [
                    {"name": "name", "value": "Ignored Co"},
                    {"name": "tier", "value": {"id": gold}},
                ]
            },
        )
    assert r.status_code == 201
    assert value(r.json(), "tier") is None


# --- strict mode ---------------------------------------------------------------------------


@pytest.fixture
def strict() -> Emulator:
    return Emulator.demo(knobs=Knobs(strict=True))


def _option(emu: Emulator, obj: str, field: str, index: int = 0) -> str:
    return emu.business.object(obj).by_name[field].spec["options"][index]["id"]


async def _write(client: httpx.AsyncClient, rid: str, *entries: dict) -> httpx.Response:
    return await client.patch(f"/api/records/accounts/{rid}", json={"fields": list(entries)})


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ({"name": "owner", "value": {"id": ALEX}}, "owner (team_selector) as {"),
        ({"name": "employees", "value": None}, "clearing employees (integer) with null"),
        ({"name": "labels", "add_values": []}, "add_values on labels (dynamictags)"),
        ({"name": "satisfaction", "value": 4}, "satisfaction (rating) as a number"),
        ({"name": "health_score", "value": 1.234}, "with 3 decimal places"),
        ({"name": "contract", "value": UPLOADED}, "contract (files) as str"),
    ],
)
async def test_strict_mode_refuses_shapes_the_evidence_does_not_support(strict, entry, what):
    rid = strict.create_record("accounts", {"name": "Strict Co"})
    async with _client(strict) as client:
        r = await _write(client, rid, {"name": "name", "value": "Strict Co"}, entry)
    assert r.status_code == 400
    errors = r.json()["fields"]
    assert errors[0] == {}
    assert errors[1]["code"] == ["unverified_shape"]
    assert what in errors[1]["value"][0]


async def test_strict_mode_refuses_a_rating_written_as_its_option(strict):
    """Ratings are option-backed (live), but no source shows one written in any form."""
    rid = strict.create_record("accounts", {"name": "Rated Co"})
    option = _option(strict, "accounts", "satisfaction", 3)
    async with _client(strict) as client:
        r = await _write(client, rid, {"name": "satisfaction", "value": {"id": option}})
    assert r.status_code == 400
    (error,) = r.json()["fields"]
    assert error["code"] == ["unverified_shape"]
    assert "satisfaction (rating) as an option" in error["value"][0]
    assert "no source shows a rating written" in error["value"][0]


async def test_strict_mode_refuses_two_entries_for_one_field(strict):
    rid = strict.create_record("accounts", {"name": "Twice Co"})
    async with _client(strict) as client:
        r = await _write(
            client,
            rid,
            {"name": "employees", "value": 1},
            {"name": "employees", "value": 2},
        )
    assert r.status_code == 400
    assert "two entries for field 'employees'" in r.json()["fields"][1]["value"][0]


async def test_strict_mode_accepts_confirmed_and_documented_shapes(strict):
    rid = strict.create_record("accounts", {"name": "Fine Co"})
    async with _client(strict) as client:
        r = await _write(
            client,
            rid,
            {"name": "tier", "value": {"id": _option(strict, "accounts", "tier")}},
            {"name": "owner", "value": ALEX},
            {"name": "health_score", "value": 1.25},
            {"name": "contract", "value": [UPLOADED]},
            {"name": "last_contacted", "value": "2026-03-31T17:27:20+00:00"},
        )
        assert r.status_code == 200, r.text
        # The unknown answers promise nothing: unarchive says {}, the detail has no fields.
        await client.delete(f"/api/records/accounts/{rid}")
        r = await client.patch(f"/api/records/accounts/{rid}/unarchive")
        assert (r.status_code, r.json()) == (200, {})
        detail = (await client.get("/api/custom-objects/accounts")).json()
        assert "fields" not in detail
        # Fields are listed by the object's UUID only (what Kizen's CLI does).
        assert (await client.get("/api/custom-objects/accounts/fields")).status_code == 404
        assert (await client.get(f"/api/custom-objects/{detail['id']}/fields")).status_code == 200


async def test_strict_mode_answers_403_to_a_contact_created_by_field_names(strict):
    contacts = strict.business.object("client_client")
    async with _client(strict) as client:
        r = await client.post(
            "/api/records/client_client/upsert",
            json={
                "lookup_value": "new@example.com",
                "fields": [{"name": "email", "value": "new@example.com"}],
            },
        )
        assert r.status_code == 403
        r = await client.post(
            "/api/records/client_client/upsert",
            json={
                "lookup_value": "new@example.com",
                "fields": [{"id": contacts.by_name["email"].id, "value": "new@example.com"}],
            },
        )
        assert r.status_code == 201


# --- the validating proxy ------------------------------------------------------------------


async def test_the_proxy_records_what_no_source_supports_and_passes_requests_on():
    emu = Emulator.demo(validate=True)
    assert emu.proxy is not None
    accounts = emu.business.object("accounts")
    rid = emu.create_record("accounts", {"name": "Proxied"})
    async with _client(emu) as client:
        ok = await client.get(f"/api/custom-objects/{accounts.id}/fields")
        assert ok.status_code == 200
        r = await _write(client, rid, {"name": "owner", "value": {"id": ALEX}})
        assert r.status_code == 200  # the emulator itself is lenient here; the proxy is not
        await client.get(
            f"/api/custom-objects/accounts/fields/{accounts.by_name['labels'].id}/tags"
        )
        await client.get(f"/api/records/accounts/{rid}", params={"verbose": "1"})
        await _write(client, rid, {"name": "products", "value": []})
    violations = [str(v) for v in emu.proxy.violations()]
    assert len(violations) == 3, violations
    assert any('owner (team_selector) as {"id": ...}' in v for v in violations)
    assert any("(unknown route)" in v and "/tags" in v for v in violations)
    assert any("query parameter 'verbose'" in v for v in violations)
    unverified = emu.proxy.unverified()
    assert [u.tier for u in unverified] == [Tier.UNVERIFIED]
    assert "a list value for products (checkboxes)" in str(unverified[0])
    assert emu.proxy.requests == 5


def test_every_api_route_the_emulator_serves_is_one_a_source_shows():
    """The emulator serves only routes real Kizen serves: each one is in the evidence table."""
    emu = Emulator.demo(validate=False)  # its own routes, not the proxy in front
    served = [
        (method, route.path)
        for route in emu.app.routes
        for method in getattr(route, "methods", ()) or ()
        if route.path.startswith("/api/") and method != "HEAD"
    ]
    assert len(served) >= 17
    sample = "7f1e2d3c-0000-4000-8000-000000000001"
    for method, path in served:
        concrete = path
        for param in ("{object_identifier}", "{object_ref}"):
            concrete = concrete.replace(param, emu.business.object("accounts").id)
        for param in ("{entity_id:kuuid}", "{field_id:kuuid}", "{object_pk:kuuid}"):
            concrete = concrete.replace(param, sample)
        assert known_route(method, concrete), (method, path)
