"""Every field type: accepted writes come back in the documented read shape, bad ones 400."""

from __future__ import annotations

import re

import pytest

from kizen_sync.emulator import Emulator
from tests.emulator.conftest import ALEX, COMPANY_ACME, value

pytestmark = pytest.mark.anyio

BLAIR = "2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def _opt(emu: Emulator, field: str, label: str) -> dict:
    f = emu.business.object("accounts").by_name[field]
    return next(
        {"id": o["id"], "code": o["code"], "name": o["name"]}
        for o in f.spec["options"]
        if o["name"] == label
    )


def _tag(emu: Emulator, obj: str, field: str, label: str) -> dict:
    f = emu.business.object(obj).by_name[field]
    return next(t for t in f.spec["tags"] if t["name"] == label)


async def _create(client, **values) -> dict:
    fields = [{"name": "name", "value": "Types Inc"}]
    fields += [{"name": k, "value": v} for k, v in values.items()]
    r = await client.post("/api/records/accounts/add", json={"fields": fields})
    assert r.status_code == 201, r.text
    return r.json()


async def test_scalar_types_round_trip(client, emu):
    file_id = emu.upload_file("brochure.pdf")
    contract = emu.upload_file("contract.pdf")
    body = await _create(
        client,
        owner={"id": ALEX},
        description="long " * 100,
        notes_html="<p>hi</p>",
        billing_email="ap@types.example",
        phone="+1 312 555 0100",
        employees=250,
        health_score="12.35",
        annual_revenue=1500000.5,
        renewal_date="2026-12-31",
        last_contacted="2026-03-31T17:27:20Z",
        active=True,
        tier={"name": "gold"},
        region=_opt(emu, "region", "East")["id"],
        segment={"id": _opt(emu, "segment", "SMB")["id"]},
        lifecycle={"name": "Active"},
        is_referenceable={"name": "Maybe"},
        satisfaction=4,
        account_timezone="Europe/Berlin",
        primary_company={"id": COMPANY_ACME},
        attachments=[file_id],
        contract=[contract],
        tier_selector={"name": "B"},
    )
    assert value(body, "owner") == {
        "id": ALEX,
        "deleted": False,
        "first_name": "Alex",
        "last_name": "Example",
        "email": "alex@example.com",
    }
    assert value(body, "phone") == "+13125550100"
    assert value(body, "employees") == 250
    assert value(body, "health_score") == 12.35
    assert value(body, "annual_revenue") == {"currency": "USD", "symbol": "$", "amount": 1500000.5}
    assert value(body, "renewal_date") == "2026-12-31"
    # rendered in the business's zone (America/Chicago), as the live captures show
    assert value(body, "last_contacted") == "2026-03-31T12:27:20.000000-05:00"
    assert value(body, "active") is True
    assert value(body, "tier") == _opt(emu, "tier", "Gold")
    assert value(body, "region") == _opt(emu, "region", "East")
    assert value(body, "segment") == _opt(emu, "segment", "SMB")
    assert value(body, "is_referenceable") == _opt(emu, "is_referenceable", "Maybe")
    assert value(body, "satisfaction") == _opt(emu, "satisfaction", "4")  # option-backed
    assert value(body, "account_timezone") == "Europe/Berlin"
    assert value(body, "primary_company") == {"id": COMPANY_ACME, "name": "Acme Corp"}
    assert value(body, "attachments") == [{"id": file_id, "name": "brochure.pdf"}]
    assert value(body, "contract") == [{"id": contract, "name": "contract.pdf"}]
    assert value(body, "tier_selector") == _opt(emu, "tier_selector", "B")
    assert value(body, "notes_html") == "<p>hi</p>"
    created = value(body, "created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}-0[56]:00", created)
    assert value(body, "display_name") == "Types Inc"  # Kizen's default field, derived


@pytest.mark.parametrize(
    ("field", "bad", "code"),
    [
        ("employees", 2**31, "max_value"),
        ("employees", 1.5, "invalid"),
        ("health_score", 1000000, "max_value"),
        ("billing_email", "not-an-email", "invalid"),
        ("phone", "3125550100", "invalid"),
        ("phone", "+1555", "invalid"),
        ("renewal_date", "31/12/2026", "invalid"),
        ("last_contacted", "yesterday", "invalid"),
        ("active", "yes", "invalid"),
        ("tier", {"name": "Platinum"}, "does_not_exist"),
        ("tier", "0b4f6a1e-9a55-4d0c-9e9f-3d2c1b0a9f8e", "does_not_exist"),
        ("satisfaction", 6, "invalid_choice"),
        ("account_timezone", "Mars/Olympus", "invalid_choice"),
        ("owner", "0b4f6a1e-9a55-4d0c-9e9f-3d2c1b0a9f8e", "does_not_exist"),
        ("primary_company", "0b4f6a1e-9a55-4d0c-9e9f-3d2c1b0a9f8e", "does_not_exist"),
        ("key_contacts", COMPANY_ACME, "not_a_list"),
        ("products", [{"name": "Hardware"}], "does_not_exist"),
        ("labels", [{"name": "Unknown tag"}], "does_not_exist"),
        ("attachments", ["not-a-uuid"], "invalid"),
        ("attachments", ["0b4f6a1e-9a55-4d0c-9e9f-3d2c1b0a9f8e"], "does_not_exist"),
        ("contract", "f11e0000-0000-4000-8000-000000000001", "not_a_list"),
        (
            "contract",
            ["f11e0000-0000-4000-8000-000000000001", "f11e0000-0000-4000-8000-000000000002"],
            "invalid",
        ),
        ("health_score", 12.345, "max_decimal_places"),
        ("annual_revenue", "10.005", "max_decimal_places"),
        ("description", 12, "invalid"),
    ],
)
async def test_invalid_values_rejected_at_their_position(client, field, bad, code):
    r = await client.post(
        "/api/records/accounts/add",
        json={"fields": [{"name": "name", "value": "Bad Inc"}, {"name": field, "value": bad}]},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["fields"][0] == {}
    assert body["fields"][1]["code"] == [code]
    assert body["fields"][1]["value"]
    lookup = await client.get("/api/records/accounts/lookup", params={"identifier": "Bad Inc"})
    assert lookup.status_code == 404  # nothing applied


async def test_text_limit_and_required_name(client):
    r = await client.post(
        "/api/records/accounts/add", json={"fields": [{"name": "name", "value": "x" * 256}]}
    )
    assert r.json()["fields"][0]["code"] == ["max_length"]
    r = await client.post(
        "/api/records/accounts/add", json={"fields": [{"name": "employees", "value": 3}]}
    )
    assert r.status_code == 400
    assert r.json()["non_field_errors"] == ["Field 'name' is required."]


async def test_multi_valued_add_remove_replace(client, emu):
    body = await _create(client, labels=[{"name": "Strategic"}])
    rid = body["id"]
    at_risk, expansion = (
        _tag(emu, "accounts", "labels", "At Risk"),
        _tag(emu, "accounts", "labels", "Expansion"),
    )
    r = await client.patch(
        f"/api/records/accounts/{rid}",
        json={
            "fields": [
                {"name": "labels", "add_values": [at_risk["id"], at_risk["id"], expansion["id"]]},
                {"name": "labels", "remove_values": [{"name": "Strategic"}, {"name": "Renewal"}]},
                {"name": "products", "add_values": [{"name": "Core"}]},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert value(r.json(), "labels") == [at_risk, expansion]
    assert value(r.json(), "products") == [_opt(emu, "products", "Core")]
    r = await client.patch(
        f"/api/records/accounts/{rid}",
        json={"fields": [{"name": "labels", "value": [expansion["id"]]}]},
    )
    assert value(r.json(), "labels") == [expansion]
    r = await client.patch(
        f"/api/records/accounts/{rid}?return_all_fields=true",
        json={"fields": [{"name": "labels", "value": []}]},
    )
    assert value(r.json(), "labels") is None
    assert value(r.json(), "name") == "Types Inc"


async def test_add_values_on_single_valued_field_names_it(client):
    body = await _create(client)
    r = await client.patch(
        f"/api/records/accounts/{body['id']}",
        json={
            "fields": [
                {"name": "employees", "value": 5},
                {"name": "tier", "add_values": [{"name": "Gold"}]},
            ]
        },
    )
    assert r.status_code == 400
    errors = r.json()["fields"]
    assert errors[0] == {}
    assert "tier" in errors[1]["add_values"][0]


async def test_entry_must_address_one_field_with_one_operation(client):
    body = await _create(client)
    r = await client.patch(
        f"/api/records/accounts/{body['id']}",
        json={
            "fields": [
                {"value": 1},
                {"name": "employees", "id": "264546ba-f3d4-5832-8470-7c5f7763a67b", "value": 1},
                {"name": "labels", "add_values": [], "remove_values": []},
                {"name": "nope", "value": 1},
                {"name": "created", "value": "2026-01-01"},
            ]
        },
    )
    errors = r.json()["fields"]
    assert [e["code"] for e in errors] == [
        ["invalid"],
        ["invalid"],
        ["invalid"],
        ["does_not_exist"],
        ["forbidden_field_write"],
    ]


async def test_null_clears_and_blank_fields_are_omitted(client):
    body = await _create(client, employees=3)
    r = await client.patch(
        f"/api/records/accounts/{body['id']}?return_all_fields=true",
        json={"fields": [{"name": "employees", "value": None}]},
    )
    assert value(r.json(), "employees") is None
    r = await client.patch(
        f"/api/records/accounts/{body['id']}", json={"fields": [{"name": "name", "value": None}]}
    )
    assert r.json()["fields"][0]["code"] == ["null"]


async def test_contact_shapes_and_client_info(client, emu):
    r = await client.post(
        "/api/records/client_client/upsert",
        json={
            "lookup_value": "ada@example.com",
            "fields": [
                {"name": "first_name", "value": "Ada"},
                {"name": "last_name", "value": "Lovelace"},
                {"name": "tags", "add_values": [{"name": "VIP"}]},
                {"name": "email_status", "value": {"name": "Suppression List"}},
                {"name": "company_additional", "add_values": [COMPANY_ACME]},
            ],
        },
    )
    assert r.status_code == 201
    contact = r.json()
    assert contact["action"] == "created"
    assert contact["display_name"] == "Ada Lovelace"
    assert contact["client_info"] == {
        "display_name": "Ada Lovelace",
        "email_on_suppression_list": True,
        "num_addresses_v2": 0,
    }
    assert value(contact, "tags") == [_tag(emu, "client_client", "tags", "VIP")]
    assert value(contact, "company_additional") == [{"id": COMPANY_ACME, "name": "Acme Corp"}]
    account = await _create(client, key_contacts=[contact["id"]])
    assert value(account, "key_contacts") == [
        {
            "id": contact["id"],
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
        }
    ]
