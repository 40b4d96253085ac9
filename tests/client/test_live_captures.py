"""Contract test: captures of live Kizen, replayed through the client's parsers.

The captures (``tests/client/kizen_live``, from Kizen's own CLI, MIT) are the only record of
what real Kizen answers. Every shape they show must parse, and normalise to the canonical
values the planner compares; and every request the client sends to a route the live OpenAPI
declares must use only the query parameters and body keys declared there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.client.models import Page, Record
from kizen_sync.emulator import Emulator
from kizen_sync.mapping import canonical_from_read
from kizen_sync.schema import FieldSchema, ObjectSchema

LIVE = Path(__file__).with_name("kizen_live")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _load(name: str) -> Any:
    return json.loads((LIVE / name).read_text(encoding="utf-8"))


def _schema(name: str) -> ObjectSchema:
    """An object capture as Kizen sends it: the CLI renamed ``name`` to ``api_name`` and
    ``category`` to ``category_id`` (NOTE.md), so that is undone first.
    """
    raw = _load(name)
    fields = [
        FieldSchema.model_validate({**f, "name": f["api_name"], "category": f.get("category_id")})
        for f in raw["fields"]
    ]
    return ObjectSchema.model_validate(
        {
            "id": raw["id"],
            "name": raw["api_name"],
            "object_type": raw.get("object_type") or "standard",
            "fields": fields,
        }
    )


def test_a_live_record_parses_and_normalises_to_canonical_values() -> None:
    schema = _schema("tax_lot.json")
    record = Record.from_wire(_load("get_tax_lot.json"))
    assert record.id == "2d1d0799-d975-41d7-afa4-176d19e5159c"
    assert set(record.fields) == {f.id for f in schema.fields}  # keyed by field UUID
    canonical = {f.name: canonical_from_read(f, record.value(f.id)) for f in schema.fields}
    assert canonical == {
        "name": "VTI - 20250331",
        "display_name": "VTI - 20250331",
        "ticker_symbol": "VTI",
        "current_value": "320.81",  # money {currency, symbol, amount}
        "purchase_price": "274.84",
        "number_of_shares": "5",  # decimal 5.0
        "owner": "916dac1b-5640-4268-9324-06132f342488",  # team member object
        # rendered in the business's zone (-05:00); canonical values are UTC
        "created": "2026-03-31T17:27:20.152070+00:00",
        "updated": "2026-03-31T21:23:53.231165+00:00",
    }


def test_live_search_rows_parse_as_a_page_of_records() -> None:
    rows = _load("list_tax_lot.json")
    page = Page.from_wire(rows, Record.from_wire)  # the CLI keeps the rows as a bare list
    assert page.next is None
    assert [r.id for r in page.results] == [row["id"] for row in rows]
    assert all(r.value("ticker_symbol") for r in page.results)


def test_live_schemas_parse_with_their_types_relations_and_stages() -> None:
    contacts = _schema("client_client.json")
    assert contacts.is_contacts
    assert contacts.identifier_field == "email"
    assert contacts.field("company_additional").is_multi_valued  # many_to_many
    assert not contacts.field("company_primary").is_multi_valued  # many_to_one
    assert contacts.field("tags").is_multi_valued  # dynamictags
    status = contacts.field("email_status")
    assert status.option_by_label("opted in").code == "opted_in"
    assert "display_name" not in contacts.derived_fields
    tax_lot = _schema("tax_lot.json")
    assert tax_lot.field("display_name") is not None  # Kizen's default field
    assert "display_name" in tax_lot.derived_fields
    deals = _schema("deals.json")
    assert deals.stage_field is not None  # pipeline: the stage changes only through /move
    assert tax_lot.stage_field is None


class _Recorder(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, set[str], set[str]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        keys = set(body) if isinstance(body, dict) else set()
        self.sent.append((request.method, request.url.path, set(request.url.params), keys))
        return await self.inner.handle_async_request(request)


def _template(path: str, contract_paths: list[str]) -> str | None:
    for template in contract_paths:
        _, pattern = template.split(" ", 1)
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(pattern))
        if re.fullmatch(regex, path):
            return template
    return None


async def test_requests_use_only_what_the_live_openapi_declares() -> None:
    contracts = _load("contracts-records-fields-objects.json")["contracts"]
    # Kizen's CLI sends ``fields`` to upsert although the live OpenAPI leaves it out (BC, AE).
    declared_extra = {"POST /api/records/{object_identifier}/upsert": {"fields"}}
    emu = Emulator.demo()
    api_key, user_id, business_id = emu.credentials
    recorder = _Recorder(httpx.ASGITransport(app=emu.app))
    settings = ClientSettings(
        base_url="http://kizen.test", api_key=api_key, user_id=user_id, business_id=business_id
    )
    async with KizenClient(settings, transport=recorder) as kizen:
        schema = await kizen.get_object_schema("accounts")
        await kizen.list_dynamic_tags("accounts", schema.field("labels").id)
        created = await kizen.upsert_record(
            "accounts",
            "Contract Co",
            [{"name": "employees", "value": 3}],
            oncreate_unarchive="unarchive",
        )
        rid = created.record.id
        await kizen.patch_record("accounts", rid, [{"name": "employees", "value": 4}])
        await kizen.get_record("accounts", rid, field_names=["employees"])
        await kizen.archive_record("accounts", rid)
        await kizen.unarchive_record("accounts", rid)
        await kizen.search_records("accounts", page_size=10, field_names=["name"])
        await kizen.lookup_record("accounts", "Contract Co")
    checked = 0
    for method, path, query, keys in recorder.sent:
        key = _template(path, [c for c in contracts if c.startswith(method + " ")])
        if key is None:
            continue  # a route the captured contract file does not cover
        contract = contracts[key]
        assert contract["present"], key
        assert query <= set(contract["query_params"]), (key, query)
        body = contract.get("request_body") or {}
        allowed = set(body.get("properties") or {}) | declared_extra.get(key, set())
        assert keys <= allowed, (key, keys - allowed)
        checked += 1
    assert checked >= 4  # upsert, PATCH, DELETE, unarchive
