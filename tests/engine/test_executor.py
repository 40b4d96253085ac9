"""The executor against the emulator in-process: one test per kind of op and failure.

Requests are observed on the wire (a recording transport in front of the ASGI app), so the
tests assert what Kizen was actually sent, and Kizen's state is read back through the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import SyncConfig
from kizen_sync.emulator import Emulator
from kizen_sync.engine.executor import ApplySummary, Executor
from kizen_sync.engine.planner import plan_row
from kizen_sync.errors import AuthenticationError, MappingError
from kizen_sync.models import ChangedRow, ChangeKind, Operation, Outcome, PlannedOp, RecordResult
from kizen_sync.schema import ObjectSchema

pytestmark = pytest.mark.anyio

CONTACTS = "client_client"


class Recorder(httpx.AsyncBaseTransport):
    """Delegates to the emulator's ASGI app and remembers (method, path, JSON body)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[tuple[str, str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]

    def clear(self) -> None:
        self.requests.clear()


@dataclass
class Kizen:
    emu: Emulator
    wire: Recorder
    batches: list[list[RecordResult]] = field(default_factory=list)

    def settings(self, **overrides: Any) -> ClientSettings:
        api_key, user_id, business_id = self.emu.credentials
        values: dict[str, Any] = {
            "base_url": "http://kizen.test",
            "api_key": api_key,
            "user_id": user_id,
            "business_id": business_id,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "max_retry_after_s": 0.05,
        }
        return ClientSettings(**(values | overrides))

    def client(self, **overrides: Any) -> KizenClient:
        return KizenClient(self.settings(**overrides), transport=self.wire)

    async def apply(
        self,
        obj: str,
        ops: list[PlannedOp],
        *,
        concurrency: int = 4,
        sync: SyncConfig | None = None,
        schema_edit: Callable[[ObjectSchema], ObjectSchema] | None = None,
        **overrides: Any,
    ) -> tuple[ApplySummary, dict[str, RecordResult]]:
        """Apply ``ops``; return the summary and every flushed result by source key.

        ``sync`` is handed to the executor; ``schema_edit`` alters the schema it is given.
        """
        self.batches.clear()
        async with KizenClient(self.settings(), transport=self.wire) as reader:
            schema = await reader.get_object_schema(obj)
        if schema_edit is not None:
            schema = schema_edit(schema)
        self.wire.clear()
        async with self.client(**overrides) as client:
            executor = Executor(
                client,
                schema,
                self.batches.append,
                sync=sync,
                concurrency=concurrency,
                flush_interval_s=0.01,
            )
            summary = await executor.apply(ops, total=len(ops))
        results = {r.op.source_key: r for batch in self.batches for r in batch}
        return summary, results


@pytest.fixture
def kizen() -> Kizen:
    emu = Emulator.demo()
    return Kizen(emu, Recorder(emu.app))


def update(key: str, kizen_id: str, *entries: dict[str, Any], **kw: Any) -> PlannedOp:
    return PlannedOp(Operation.UPDATE, key, kizen_id=kizen_id, entries=entries, **kw)


def _by_id(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    """Contact-create entries keyed by field id, as the planner makes them (AE: name-keyed
    contact creates can answer 403)."""
    fields = Emulator.demo(validate=False).business.object(CONTACTS).by_name
    return [
        {"id": fields[e["name"]].id, **{k: v for k, v in e.items() if k != "name"}} for e in entries
    ]


async def _contact(kizen: Kizen, email: str, *entries: dict[str, Any]) -> str:
    async with kizen.client() as client:
        result = await client.upsert_record(CONTACTS, email, _by_id(*entries))
    return result.record.id


async def _tag_ids(kizen: Kizen, obj: str, field_name: str) -> dict[str, str]:
    async with kizen.client() as client:
        schema = await client.get_object_schema(obj)
        target = schema.field(field_name)
        assert target is not None
        return {t.name: t.id for t in await client.list_dynamic_tags(obj, target.id)}


def _ids(value: Any) -> set[str]:
    return {v["id"] if isinstance(v, dict) else v for v in value or []}


async def test_create_goes_through_upsert_and_a_resend_never_duplicates(kizen):
    op = PlannedOp(
        Operation.CREATE,
        "c1",
        identifier="nora.new@example.com",
        entries=tuple(
            _by_id(
                {"name": "email", "value": "nora.new@example.com"},
                {"name": "first_name", "value": "Nora"},
            )
        ),
    )
    summary, results = await kizen.apply(CONTACTS, [op])
    assert summary.counts.created == 1
    first = results["c1"]
    assert first.outcome is Outcome.SUCCESS
    assert first.created
    assert [(m, p) for m, p, _ in kizen.wire.writes()] == [
        ("POST", f"/api/records/{CONTACTS}/upsert")
    ]

    # A crash before the state write means the next run sends the create again.
    summary, results = await kizen.apply(CONTACTS, [op])
    assert (summary.counts.created, summary.counts.updated) == (0, 1)
    assert results["c1"].kizen_id == first.kizen_id
    async with kizen.client() as client:
        matches = [r async for r in client.iter_records(CONTACTS, search="nora.new@example.com")]
    assert [r.id for r in matches] == [first.kizen_id]
    assert matches[0].value("first_name") == "Nora"


async def test_update_patches_only_the_planned_fields(kizen):
    rid = await _contact(
        kizen,
        "pat@example.com",
        {"name": "first_name", "value": "Pat"},
        {"name": "last_name", "value": "Old"},
    )
    summary, results = await kizen.apply(
        CONTACTS, [update("p1", rid, {"name": "last_name", "value": "New"})]
    )
    assert summary.counts.updated == 1
    assert results["p1"].outcome is Outcome.SUCCESS
    assert kizen.wire.writes() == [
        (
            "PATCH",
            f"/api/records/{CONTACTS}/{rid}",
            {"fields": [{"name": "last_name", "value": "New"}]},
        )
    ]
    async with kizen.client() as client:
        record = await client.get_record(CONTACTS, rid)
    assert (record.value("first_name"), record.value("last_name")) == ("Pat", "New")


async def test_managed_tags_add_and_remove_keep_values_added_in_kizen(kizen):
    tags = await _tag_ids(kizen, CONTACTS, "tags")
    rid = await _contact(
        kizen,
        "tess@example.com",
        {"name": "tags", "value": [tags["VIP"], tags["Newsletter"], tags["Beta"]]},
    )
    op = update(
        "t1",
        rid,
        {"name": "tags", "add_values": [tags["Partner"]]},
        {"name": "tags", "remove_values": [tags["Newsletter"]]},
    )
    summary, _ = await kizen.apply(CONTACTS, [op])
    assert summary.counts.updated == 1
    async with kizen.client() as client:
        record = await client.get_record(CONTACTS, rid)
    # "Beta" was never managed by this op: a value a person added in Kizen stays.
    assert _ids(record.value("tags")) == {tags["VIP"], tags["Beta"], tags["Partner"]}


async def test_mirror_reads_kizen_and_sends_the_difference(kizen):
    _, option, rid = await _products(kizen, "Mirror Co")
    desired = (option["Analytics"], option["Support"])
    summary, results = await kizen.apply(
        "accounts", [update("m1", rid, mirror={"products": desired})]
    )
    assert results["m1"].outcome is Outcome.SUCCESS
    assert summary.counts.updated == 1
    # One entry per field per request (no source shows two): the add, then the remove.
    assert [body for _, _, body in kizen.wire.writes()] == [
        {"fields": [{"name": "products", "add_values": [option["Support"]]}]},
        {"fields": [{"name": "products", "remove_values": [option["Core"]]}]},
    ]
    async with kizen.client() as client:
        record = await client.get_record("accounts", rid)
    assert _ids(record.value("products")) == set(desired)

    # Already equal: nothing is written, and the op counts as a no-op.
    summary, _ = await kizen.apply("accounts", [update("m1", rid, mirror={"products": desired})])
    assert kizen.wire.writes() == []
    assert summary.counts.noop == 1


async def test_mirror_pages_a_summarized_relationship(kizen):
    async with kizen.client() as client:
        contact_ids = [
            (await client.upsert_record(CONTACTS, f"k{i:03}@example.com", [])).record.id
            for i in range(106)
        ]
        account = await client.upsert_record(
            "accounts", "Big Co", [{"name": "key_contacts", "value": contact_ids[:105]}]
        )
        rid = account.record.id
        assert (await client.get_record("accounts", rid)).field("key_contacts").is_summarized
    desired = tuple(contact_ids[3:106])  # drop three, add the 106th
    _, results = await kizen.apply(
        "accounts", [update("big", rid, mirror={"key_contacts": desired})]
    )
    assert results["big"].outcome is Outcome.SUCCESS, results["big"].attempts
    pages = [p for m, p, _ in kizen.wire.requests if "/field-values/" in p]
    assert len(pages) >= 2
    (_, _, added), (_, _, removed) = kizen.wire.writes()
    assert added["fields"] == [{"name": "key_contacts", "add_values": [contact_ids[105]]}]
    assert set(removed["fields"][0]["remove_values"]) == set(contact_ids[:3])
    async with kizen.client() as client:
        schema = await client.get_object_schema("accounts")
        field_id = schema.field("key_contacts").id
        now = {item.id async for item in client.iter_field_values(rid, field_id)}
    assert now == set(desired)


async def test_archive_counts_an_already_archived_record_as_done(kizen):
    rid = await _contact(kizen, "gone@example.com")
    op = PlannedOp(Operation.ARCHIVE, "g1", kizen_id=rid)
    summary, results = await kizen.apply(CONTACTS, [op])
    assert summary.counts.archived == 1
    assert results["g1"].attempts[-1].http_status == 204
    summary, results = await kizen.apply(CONTACTS, [op])
    assert summary.counts.archived == 1
    assert results["g1"].outcome is Outcome.SUCCESS
    assert results["g1"].attempts[-1].http_status == 404
    async with kizen.client() as client:
        assert await client.lookup_record(CONTACTS, "gone@example.com") is None


async def test_restore_unarchives_before_the_patch(kizen):
    rid = await _contact(kizen, "back@example.com", {"name": "first_name", "value": "Old"})
    async with kizen.client() as client:
        await client.archive_record(CONTACTS, rid)
    op = update("b1", rid, {"name": "first_name", "value": "Back"}, restore=True)
    summary, results = await kizen.apply(CONTACTS, [op])
    assert results["b1"].outcome is Outcome.SUCCESS
    assert summary.counts.updated == 1
    assert [(m, p) for m, p, _ in kizen.wire.writes()] == [
        ("PATCH", f"/api/records/{CONTACTS}/{rid}/unarchive"),
        ("PATCH", f"/api/records/{CONTACTS}/{rid}"),
    ]
    async with kizen.client() as client:
        assert (await client.get_record(CONTACTS, rid)).value("first_name") == "Back"


async def test_patch_of_a_record_archived_in_kizen_fails_alone(kizen):
    gone = await _contact(kizen, "archived@example.com")
    alive = await _contact(kizen, "alive@example.com")
    async with kizen.client() as client:
        await client.archive_record(CONTACTS, gone)
    ops = [
        update("x", gone, {"name": "first_name", "value": "X"}),
        update("y", alive, {"name": "first_name", "value": "Y"}),
    ]
    summary, results = await kizen.apply(CONTACTS, ops)
    assert (summary.counts.failed, summary.counts.updated) == (1, 1)
    failed = results["x"].attempts[-1]
    assert (failed.outcome, failed.http_status, failed.error_class) == (
        Outcome.FAILED,
        404,
        "NotFoundError",
    )
    assert "deleted or archived in Kizen" in failed.error_message
    assert summary.failures[0]["source_key"] == "x"


async def test_validation_error_keeps_kizens_per_field_messages(kizen):
    rid = await _contact(kizen, "val@example.com")
    op = update(
        "v1",
        rid,
        {"name": "first_name", "value": "Fine"},
        {"name": "birthday", "value": "not a date"},
    )
    summary, results = await kizen.apply(CONTACTS, [op])
    assert summary.counts.failed == 1
    last = results["v1"].attempts[-1]
    assert (last.http_status, last.error_class) == (400, "KizenValidationError")
    assert list(last.field_errors) == ["birthday"]
    assert last.field_errors["birthday"]
    assert len(kizen.wire.writes()) == 1  # a 400 is never retried


async def test_lookup_resolves_the_id_or_fails_with_the_identifier(kizen):
    rid = await _contact(kizen, "look@example.com")
    ops = [
        PlannedOp(
            Operation.UPDATE,
            key,
            identifier=email,
            needs_lookup=True,
            entries=({"name": "first_name", "value": "L"},),
        )
        for key, email in (("l1", "look@example.com"), ("l2", "nobody@example.com"))
    ]
    summary, results = await kizen.apply(CONTACTS, ops)
    assert results["l1"].kizen_id == rid
    assert results["l1"].outcome is Outcome.SUCCESS
    assert results["l2"].outcome is Outcome.FAILED
    assert results["l2"].attempts[-1].error_message == (
        "no Kizen record with email 'nobody@example.com'"
    )
    assert (summary.counts.updated, summary.counts.failed) == (1, 1)


async def test_fail_and_noop_send_nothing(kizen):
    error = MappingError(column="mail", field="email", problem="not an e-mail address")
    ops = [
        PlannedOp(Operation.FAIL, "f1", error=error),
        PlannedOp(Operation.NOOP, "n1", kizen_id="r-1"),
    ]
    summary, results = await kizen.apply(CONTACTS, ops)
    assert kizen.wire.requests == []
    assert (summary.counts.failed, summary.counts.noop) == (1, 1)
    assert results["f1"].outcome is Outcome.FAILED
    assert results["f1"].attempts == ()  # the store describes op.error (sensitive-aware)
    assert summary.failures[0]["field_errors"] == {"email": ["not an e-mail address"]}
    assert results["n1"].outcome is Outcome.SUCCESS


async def test_rejected_credentials_stop_the_run_after_flushing_what_is_done(kizen):
    noops = [PlannedOp(Operation.NOOP, f"n{i}", kizen_id=f"r{i}") for i in range(3)]
    writes = [
        update(f"w{i}", "7f1e2d3c-0000-4000-8000-000000000001", {"name": "name", "value": "X"})
        for i in range(20)
    ]
    with pytest.raises(AuthenticationError):
        await kizen.apply("companies_company", noops + writes, concurrency=2, api_key="wrong-key")
    flushed = [r.op.source_key for batch in kizen.batches for r in batch]
    assert sorted(flushed) == ["n0", "n1", "n2"]
    assert len(kizen.wire.writes()) <= 2  # the workers stopped at the first 401


async def test_transient_errors_are_retried_and_every_attempt_is_audited(kizen):
    kizen.emu.set_knobs(error_rate=0.4, seed=7)
    ops = [
        PlannedOp(
            Operation.CREATE,
            f"r{i}",
            identifier=f"Retry Co {i}",
            entries=({"name": "employees", "value": i},),
        )
        for i in range(12)
    ]
    summary, results = await kizen.apply("accounts", ops)
    assert summary.counts.created == 12
    retried = [r for r in results.values() if len(r.attempts) > 1]
    assert retried, "with 40% injected errors some record needs a second attempt"
    for result in retried:
        outcomes = [a.outcome for a in result.attempts]
        assert outcomes == [Outcome.RETRY] * (len(outcomes) - 1) + [Outcome.SUCCESS]
        assert [a.attempt for a in result.attempts] == list(range(1, len(outcomes) + 1))
        assert result.attempts[0].http_status in {500, 502, 503}


async def test_results_are_flushed_in_batches_with_progress(kizen):
    seen: list[tuple[int, int]] = []
    async with kizen.client() as client:
        schema = await client.get_object_schema(CONTACTS)
        executor = Executor(
            client,
            schema,
            kizen.batches.append,
            flush_every=100,
            progress=lambda done, total: seen.append((done, total)),
        )
        ops = [PlannedOp(Operation.NOOP, f"n{i}", kizen_id=f"r{i}") for i in range(450)]
        summary = await executor.apply(ops, total=450)
    keys = [r.op.source_key for batch in kizen.batches for r in batch]
    assert sorted(keys) == sorted(op.source_key for op in ops)
    assert len(kizen.batches) >= 2
    assert summary.done == 450
    assert seen[-1] == (450, 450)
    assert [d for d, _ in seen] == list(range(1, 451))


# --- mirror addressing, missing fields, per-field problems --------------------------------------


def accounts_sync(*fields: dict[str, Any]) -> SyncConfig:
    """An accounts sync mapping ``fields`` (plus the name, its match key)."""
    return SyncConfig.model_validate(
        {
            "name": "accounts",
            "object": "accounts",
            "source": {"table": "accounts", "primary_key": ["id"]},
            "identity": {"match_on": "name"},
            "fields": [{"column": "name", "field": "name"}, *fields],
        }
    )


async def _products(kizen: Kizen, name: str = "Mirror By Id Co") -> tuple[str, dict[str, str], str]:
    """A new account holding Core and Analytics: the products field id, options by label, and
    the account's id."""
    async with kizen.client() as client:
        schema = await client.get_object_schema("accounts")
        products = schema.field("products")
        assert products is not None
        assert products.options
        option = {o.name: o.id for o in products.options}
        created = await client.upsert_record(
            "accounts",
            name,
            [{"name": "products", "value": [option["Core"], option["Analytics"]]}],
        )
    return products.id, option, created.record.id


async def test_mirror_entries_address_the_field_by_uuid_when_the_mapping_does(
    kizen: Kizen,
) -> None:
    field_id, option, rid = await _products(kizen)
    sync = accounts_sync({"column": "product_list", "field": field_id, "multi_mode": "mirror"})
    desired = (option["Analytics"], option["Support"])
    _, results = await kizen.apply(
        "accounts", [update("m1", rid, mirror={"products": desired})], sync=sync
    )
    assert results["m1"].outcome is Outcome.SUCCESS
    assert [body for _, _, body in kizen.wire.writes()] == [
        {"fields": [{"id": field_id, "add_values": [option["Support"]]}]},
        {"fields": [{"id": field_id, "remove_values": [option["Core"]]}]},
    ]


async def test_a_mirror_field_missing_from_the_schema_names_the_source_column(
    kizen: Kizen,
) -> None:
    _, option, rid = await _products(kizen)
    sync = accounts_sync({"column": "product_list", "field": "products", "multi_mode": "mirror"})

    def without_products(schema: ObjectSchema) -> ObjectSchema:
        kept = [f for f in schema.fields if f.name != "products"]
        return schema.model_copy(update={"fields": kept})

    summary, results = await kizen.apply(
        "accounts",
        [update("m1", rid, mirror={"products": (option["Core"],)})],
        sync=sync,
        schema_edit=without_products,
    )
    assert summary.counts.failed == 1
    last = results["m1"].attempts[-1]
    assert last.error_class == "MappingError"
    assert "column 'product_list' -> field 'products'" in (last.error_message or "")
    assert kizen.wire.writes() == []


async def test_a_rejected_row_reports_every_problem_under_its_field(kizen: Kizen) -> None:
    async with kizen.client() as client:
        schema = await client.get_object_schema("accounts")
    sync = accounts_sync(
        {"column": "tier", "field": "tier"},
        {"column": "employees", "field": "employees"},
    )
    change = ChangedRow(
        kind=ChangeKind.NEW,
        source_key="bad",
        row={"name": "Bad Co", "tier": "Platinum", "employees": "many"},
        state=None,
        fingerprint="fp",
    )
    op = plan_row(change, sync, schema)
    assert op.op is Operation.FAIL
    summary, _ = await kizen.apply("accounts", [op], sync=sync)
    field_errors = summary.failures[0]["field_errors"]
    assert set(field_errors) == {"tier", "employees"}
    assert "Platinum" in field_errors["tier"][0]
    assert "many" in field_errors["employees"][0]
