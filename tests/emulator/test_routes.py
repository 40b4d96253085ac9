"""Routes, shapes, field selection, schema discovery and Kizen's 404/405 behaviour."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import COMPANY_ACME, headers, value

pytestmark = pytest.mark.anyio

ACME_URL = f"/api/records/companies_company/{COMPANY_ACME}"


async def test_record_detail_shape_by_api_name_or_uuid(client, emu):
    r = await client.get(ACME_URL)
    assert r.status_code == 200
    assert r.headers["x-request-id"]
    body = r.json()
    assert set(body) == {
        "id",
        "object_type",
        "num_upcoming_activities",
        "num_associated_team_members",
        "lead_source_types",
        "client_info",
        "access",
        "fields",
    }
    assert body["client_info"] is None
    assert body["access"] == {"view": True, "edit": True, "remove": True}
    for fid, entry in body["fields"].items():
        assert entry["id"] == fid
        assert set(entry) == {"id", "name", "field_type", "display_name", "value"}
    by_uuid = await client.get(
        f"/api/records/{emu.schema('companies_company')['id']}/{COMPANY_ACME.upper()}"
    )
    assert by_uuid.json()["fields"] == body["fields"]


async def test_field_selection_parameters(client):
    rid = (
        await client.post(
            "/api/records/accounts/add",
            json={"fields": [{"name": "name", "value": "Sel"}, {"name": "employees", "value": 7}]},
        )
    ).json()["id"]
    url = f"/api/records/accounts/{rid}"
    names = lambda r: {e["name"] for e in r.json()["fields"].values()}  # noqa: E731
    assert names(await client.get(url)) == {
        "name",
        "employees",
        "created",
        "updated",
        "display_name",
    }
    assert names(await client.get(url, params={"field_names": "employees,bogus"})) == {"employees"}
    assert names(await client.get(url, params={"field_names": ""})) == {
        "name",
        "created",
        "updated",
        "display_name",
    }
    emp_id = next(
        e["id"]
        for e in (await client.get(url)).json()["fields"].values()
        if e["name"] == "employees"
    )
    assert names(await client.get(url, params={"field_ids": emp_id, "field_names": "name"})) == {
        "employees"
    }
    assert names(await client.get(url, params={"field_category": "no-such"})) == set()
    r = await client.get(url, params={"include_hidden_fields": "maybe"})
    assert r.status_code == 400


async def test_search_paging_field_names_and_archived_excluded(client, emu):
    ids = [emu.create_record("accounts", {"name": f"S{i}"}) for i in range(5)]
    r = await client.post(
        "/api/records/accounts/search?page=2&page_size=2", json={"field_names": ["name"]}
    )
    body = r.json()
    assert body["count"] == 5
    assert [value(x, "name") for x in body["results"]] == ["S2", "S3"]
    assert "page=3" in body["next"]
    assert body["previous"].endswith("page_size=2")
    assert all(len(x["fields"]) == 1 for x in body["results"])
    await client.delete(f"/api/records/accounts/{ids[0]}")
    r = await client.post(
        "/api/records/accounts/search", params={"search": "s"}, json={"page_size": 5000}
    )
    assert r.json()["count"] == 4
    r = await client.post("/api/records/accounts/search?ordering=-name", json={})
    assert value(r.json()["results"][0], "name") == "S4"
    r = await client.post("/api/records/accounts/search?page=9", json={})
    assert r.status_code == 404
    r = await client.post("/api/records/accounts/search", json={"query": [{"filters": []}]})
    assert r.status_code == 400
    assert r.json()["errors"]


async def test_schema_discovery(client, emu):
    listed = (await client.get("/api/custom-objects")).json()
    assert "client_client" not in [o["name"] for o in listed["results"]]
    listed = (await client.get("/api/custom-objects", params={"custom_only": "false"})).json()
    assert {o["name"] for o in listed["results"]} == {
        "companies_company",
        "client_client",
        "accounts",
        "deals",
    }
    detail = (await client.get("/api/custom-objects/accounts")).json()
    assert detail["categories"]
    assert len(detail["fields"]) == 29
    fields = (await client.get(f"/api/custom-objects/{detail['id']}/fields")).json()
    assert isinstance(fields, list)
    assert {f["field_type"] for f in fields} >= {"selector", "files", "wysiwyg", "rating"}
    rel = next(f for f in fields if f["name"] == "key_contacts")
    assert rel["relation"]["cardinality"] == "many_to_many"
    assert rel["relation"]["related_object_object_name"] == "client_client"
    assert next(f for f in fields if f["name"] == "attachments")["allow_multiple"] is True
    assert next(f for f in fields if f["name"] == "contract")["allow_multiple"] is False
    rating = next(f for f in fields if f["name"] == "satisfaction")
    assert [(o["name"], o["code"]) for o in rating["options"]] == [
        ("1 - Low", "1"),
        ("2", "2"),
        ("3", "3"),
        ("4", "4"),
        ("5 - High", "5"),
    ]
    labels = next(f for f in fields if f["name"] == "labels")
    # Kizen's CLI reads a custom object's tags under /api/pipelines/{object UUID}/...
    tags = (
        await client.get(
            f"/api/pipelines/{detail['id']}/fields/{labels['id']}/tags",
            params={"search": "re", "ordering": "name", "page": 1, "page_size": 100},
        )
    ).json()
    assert [t["name"] for t in tags["results"]] == ["Renewal"]
    for old in (
        f"/api/custom-objects/accounts/fields/{labels['id']}/tags",
        f"/api/pipelines/accounts/fields/{labels['id']}/tags",
    ):
        assert (await client.get(old)).status_code == 404, old
    contact_tags = emu.business.object("client_client").by_name["titles"].id
    titles = (await client.get(f"/api/client/fields/{contact_tags}/tags")).json()
    assert [t["name"] for t in titles["results"]] == ["CEO", "CTO", "Buyer"]


@pytest.mark.parametrize(
    "path",
    [
        ACME_URL + "/",
        "/api/records/companies_company/not-a-uuid",
        "/api/nothing",
        "/api/records/companies_company/7f1e2d3c000040008000000000000001",
    ],
)
async def test_unknown_routes_answer_html_404(client, path):
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-request-id"]


async def test_unknown_object_and_record_are_json_404(client):
    r = await client.get("/api/records/nope/7f1e2d3c-0000-4000-8000-000000000009")
    assert r.json() == {"detail": "Not found.", "code": "not_found"}
    r = await client.post(ACME_URL)
    assert r.status_code == 405


async def test_a_client_hanging_up_mid_body_changes_nothing_and_raises_nothing(emu):
    """A sync killed (or timing out) while sending a PATCH: the emulator shrugs, logs 499."""
    before = emu.records("companies_company")
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers(emu).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": ACME_URL,
        "raw_path": ACME_URL.encode(),
        "query_string": b"",
        "headers": [*raw_headers, (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("kizen.test", 80),
    }
    await emu.app(scope, receive, send)

    assert sent[0]["status"] == 499
    assert emu.records("companies_company") == before
