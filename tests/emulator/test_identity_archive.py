"""Identifier uniqueness, archive, unarchive, overwrite, upsert, lookup, big relations."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import COMPANY_ACME, value

pytestmark = pytest.mark.anyio

NOT_FOUND = {"detail": "Not found.", "code": "not_found"}


async def _add(client, name: str, **extra) -> dict:
    r = await client.post(
        "/api/records/accounts/add", json={"fields": [{"name": "name", "value": name}], **extra}
    )
    return r


async def test_names_may_repeat_and_lookup_returns_the_first(client):
    """Real businesses hold duplicate names (Kizen's CLI: ``create`` duplicates rows)."""
    first = (await _add(client, "Umbrella")).json()["id"]
    second = await _add(client, "Umbrella")
    assert second.status_code == 201
    assert second.json()["id"] != first
    other = (await _add(client, "Other")).json()
    r = await client.patch(
        f"/api/records/accounts/{other['id']}",
        json={"fields": [{"name": "name", "value": "Umbrella"}]},
    )
    assert r.status_code == 200
    r = await client.get("/api/records/accounts/lookup", params={"identifier": "Umbrella"})
    assert r.json()["id"] == first
    await client.delete(f"/api/records/accounts/{first}")
    r = await client.get("/api/records/accounts/lookup", params={"identifier": "Umbrella"})
    assert r.json()["id"] == second.json()["id"]


async def test_contact_emails_stay_unique_case_insensitively(client):
    body = {"fields": [{"name": "email", "value": "dup@example.com"}]}
    assert (await client.post("/api/records/client_client/add", json=body)).status_code == 201
    r = await client.post(
        "/api/records/client_client/add",
        json={"fields": [{"name": "email", "value": "DUP@example.com"}]},
    )
    assert r.status_code == 400
    assert r.json()["fields"][0]["code"] == ["unique"]


async def test_archive_then_404_everywhere_and_unarchive(client, emu):
    rid = (await _add(client, "Soylent")).json()["id"]
    r = await client.delete(f"/api/records/accounts/{rid}")
    assert r.status_code == 204
    assert r.content == b""
    for method in ("GET", "DELETE", "PATCH", "PUT"):
        r = await client.request(method, f"/api/records/accounts/{rid}", json={"fields": []})
        assert (r.status_code, r.json()) == (404, NOT_FOUND), method
    search = await client.post("/api/records/accounts/search", json={})
    assert rid not in [row["id"] for row in search.json()["results"]]
    assert emu.get_record("accounts", rid)["archived"] is True
    r = await client.patch(f"/api/records/accounts/{rid}/unarchive")
    assert r.status_code == 200
    assert value(r.json(), "name") == "Soylent"
    assert (await client.get(f"/api/records/accounts/{rid}")).status_code == 200


async def test_add_against_archived_holder_prompt_unarchive_overwrite(client, emu):
    rid = (await _add(client, "Wonka")).json()["id"]
    await client.delete(f"/api/records/accounts/{rid}")
    r = await _add(client, "wonka")
    assert r.status_code == 400  # the statuses documented for add are 200/201 and 400
    assert r.json()["fields"][0]["code"] == ["conflict"]
    r = await _add(client, "WONKA", unarchive="unarchive")
    assert (r.status_code, r.json()["action"], r.json()["id"]) == (201, "unarchived", rid)
    await client.delete(f"/api/records/accounts/{rid}")
    r = await _add(client, "Wonka", unarchive="overwrite")
    assert r.status_code == 201
    assert r.json()["action"] == "created"
    assert r.json()["id"] != rid
    renamed = emu.get_record("accounts", rid)
    assert value(renamed, "name") == "WONKA_archived_1"
    assert renamed["archived"]


async def test_patch_onto_archived_identifier_needs_overwrite(client, emu):
    old = (await _add(client, "Tyrell")).json()["id"]
    await client.delete(f"/api/records/accounts/{old}")
    new = (await _add(client, "Rosen")).json()["id"]
    body = {"fields": [{"name": "name", "value": "Tyrell"}]}
    r = await client.patch(f"/api/records/accounts/{new}", json=body)
    assert r.status_code == 400  # PATCH documents 200 and 400 (live contract), no 409
    assert r.json()["fields"][0]["code"] == ["conflict"]
    r = await client.patch(
        f"/api/records/accounts/{new}", json={**body, "archived_conflict": "overwrite"}
    )
    assert r.status_code == 200
    assert value(r.json(), "name") == "Tyrell"
    assert value(emu.get_record("accounts", old), "name") == "Tyrell_archived_1"


async def test_contact_email_rename_keeps_an_email_shape(client, emu):
    r = await client.post(
        "/api/records/client_client/upsert", json={"lookup_value": "x@example.com"}
    )
    cid = r.json()["id"]
    await client.delete(f"/api/records/client_client/{cid}")
    r = await client.post(
        "/api/records/client_client/upsert",
        json={"lookup_value": "X@example.com", "oncreate_unarchive": "overwrite"},
    )
    assert r.status_code == 201
    assert r.json()["action"] == "created"
    assert value(emu.get_record("client_client", cid), "email") == "x_archived_1@example.com"


async def test_upsert_updates_live_match_and_handles_archived(client):
    r = await client.post(
        "/api/records/accounts/upsert",
        json={"lookup_value": "Stark", "fields": [{"name": "employees", "value": 1}]},
    )
    assert (r.status_code, r.json()["action"]) == (201, "created")
    rid = r.json()["id"]
    r = await client.post(
        "/api/records/accounts/upsert",
        json={"lookup_value": "STARK", "fields": [{"name": "employees", "value": 2}]},
    )
    assert (r.status_code, r.json()["action"], r.json()["id"]) == (200, "updated", rid)
    assert {e["name"] for e in r.json()["fields"].values()} == {"employees", "updated"}
    await client.delete(f"/api/records/accounts/{rid}")
    r = await client.post("/api/records/accounts/upsert", json={"lookup_value": "Stark"})
    assert r.status_code == 400  # upsert documents 200, 201 and 400 only
    assert "archived" in r.json()["non_field_errors"][0]
    r = await client.post(
        "/api/records/accounts/upsert",
        json={"lookup_value": "Stark", "oncreate_unarchive": "unarchive"},
    )
    assert (r.status_code, r.json()["action"], r.json()["id"]) == (201, "unarchived", rid)
    assert value(r.json(), "employees") == 2
    r = await client.post("/api/records/accounts/upsert", json={"lookup_value": ""})
    assert r.status_code == 400
    assert "lookup_value" in r.json()


async def test_upsert_matches_case_insensitively_without_trimming_first_match_wins(client):
    first = (await _add(client, "Initrode")).json()["id"]
    await _add(client, "INITRODE")
    r = await client.post(
        "/api/records/accounts/upsert",
        json={"lookup_value": "initrode", "fields": [{"name": "employees", "value": 5}]},
    )
    assert (r.status_code, r.json()["id"]) == (200, first)
    r = await client.post("/api/records/accounts/upsert", json={"lookup_value": " initrode "})
    assert (r.status_code, r.json()["action"]) == (201, "created")


async def test_lookup_is_exact(client):
    await _add(client, "Cyberdyne Systems")
    r = await client.get("/api/records/accounts/lookup", params={"identifier": "Cyberdyne Systems"})
    assert r.status_code == 200
    assert value(r.json(), "name") == "Cyberdyne Systems"
    for near in (" Cyberdyne Systems", "cyberdyne systems", "Cyberdyne  Systems"):
        r = await client.get("/api/records/accounts/lookup", params={"identifier": near})
        assert r.status_code == 404, near
    r = await client.get("/api/records/accounts/lookup")
    assert r.status_code == 400
    assert r.json()["code"] == "required"
    r = await client.get("/api/records/accounts/lookup", params={"identifier": "nobody"})
    assert r.status_code == 404


async def test_big_to_many_relation_is_summarised_and_paged(client, emu):
    contacts = [
        emu.create_record(
            "client_client", {"email": f"c{i:03}@example.com", "first_name": f"C{i:03}"}
        )
        for i in range(105)
    ]
    r = await client.post(
        "/api/records/accounts/add",
        json={
            "fields": [
                {"name": "name", "value": "Big"},
                {"name": "key_contacts", "value": contacts},
                {"name": "primary_company", "value": COMPANY_ACME},
            ]
        },
    )
    assert r.status_code == 201
    entry = next(e for e in r.json()["fields"].values() if e["name"] == "key_contacts")
    assert "value" not in entry
    assert entry["value_summary"] == {"count": 105}
    rid, fid = r.json()["id"], entry["id"]
    page1 = (
        await client.get(f"/api/records/{rid}/field-values/{fid}", params={"page_size": 100})
    ).json()
    assert page1["count"] == 105
    assert len(page1["results"]) == 100
    assert page1["next"].startswith("http://kizen.test/")
    assert "page=2" in page1["next"]
    assert set(page1["results"][0]) == {
        "id",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "display_name",
    }
    page2 = (await client.get(page1["next"])).json()
    assert len(page2["results"]) == 5
    assert page2["previous"]
    assert page2["next"] is None
    found = (
        await client.get(f"/api/records/{rid}/field-values/{fid}", params={"search": "c104"})
    ).json()
    assert [x["email"] for x in found["results"]] == ["c104@example.com"]
    company_field = next(
        e["id"] for e in r.json()["fields"].values() if e["name"] == "primary_company"
    )
    one = (await client.get(f"/api/records/{rid}/field-values/{company_field}")).json()
    assert one["results"] == [
        {"id": COMPANY_ACME, "name": "Acme Corp", "display_name": "Acme Corp"}
    ]
