"""Adding field options and dynamic tags (``POST .../fields/{field}/options``)."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import headers

pytestmark = pytest.mark.anyio


def ids(emu, object_name: str, field_name: str) -> tuple[str, str]:
    schema = emu.schema(object_name)
    field = next(f for f in schema["fields"] if f["name"] == field_name)
    return schema["id"], field["id"]


async def test_a_new_tag_is_listed_and_can_be_written(client, emu):
    object_id, field_id = ids(emu, "client_client", "tags")
    r = await client.post(
        f"/api/custom-objects/{object_id}/fields/{field_id}/options", json={"name": " Gold "}
    )
    assert r.status_code == 201
    tag = r.json()
    assert tag["name"] == "Gold"
    assert set(tag) == {"id", "code", "name", "order", "meta"}
    listed = (await client.get(f"/api/client/fields/{field_id}/tags")).json()["results"]
    assert {"id": tag["id"], "name": "Gold"} in listed
    r = await client.post(
        "/api/records/client_client/add",
        json={
            "fields": [
                {"name": "email", "value": "gold@example.com"},
                {"name": "tags", "add_values": [tag["id"]]},
            ]
        },
    )
    assert r.status_code in (200, 201), r.text
    tags = next(f for f in r.json()["fields"].values() if f["name"] == "tags")["value"]
    assert tags == [{"id": tag["id"], "name": "Gold"}]


async def test_option_names_are_checked_and_writes_need_a_write_key(client, emu):
    object_id, field_id = ids(emu, "client_client", "tags")
    url = f"/api/custom-objects/{object_id}/fields/{field_id}/options"
    taken = await client.post(url, json={"name": "vip"})  # VIP exists (case-insensitive)
    assert (taken.status_code, list(taken.json())) == (400, ["name"])
    assert (await client.post(url, json={})).json() == {"name": ["This field is required."]}
    assert (await client.post(url, json={"name": "  "})).status_code == 400
    assert (await client.post(url, json={"name": "x" * 256})).status_code == 400
    readonly = await client.post(
        url, json={"name": "Silver"}, headers=headers(emu, emu.readonly_key)
    )
    assert readonly.status_code == 403
    _, text_field = ids(emu, "client_client", "first_name")
    no_options = await client.post(
        f"/api/custom-objects/{object_id}/fields/{text_field}/options", json={"name": "A"}
    )
    assert no_options.status_code == 400
    by_name = await client.post(
        f"/api/custom-objects/client_client/fields/{field_id}/options", json={"name": "A"}
    )
    assert by_name.status_code == 404  # the object is addressed by UUID on this route
