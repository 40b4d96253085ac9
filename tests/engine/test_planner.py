"""plan_row(): which op, which entries, which state, for each kind of change and config."""

from __future__ import annotations

from typing import Any

import pytest

from kizen_sync.config import SyncConfig
from kizen_sync.engine.planner import plan_row, set_diff
from kizen_sync.errors import MappingError
from kizen_sync.models import ChangedRow, ChangeKind, FieldChange, Operation, StateRow
from kizen_sync.schema import FieldOption, FieldSchema, ObjectSchema, Relation

KIZEN_ID = "7f1e2d3c-0000-4000-8000-00000000000a"
OTHER_ID = "7f1e2d3c-0000-4000-8000-00000000000b"
C1, C2, C3 = (f"0ca33143-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
GOLD, SILVER = "opt-gold", "opt-silver"
CORE, ANALYTICS, SUPPORT = "opt-core", "opt-analytics", "opt-support"
TIER_FIELD_ID = "9d5c7a10-1111-4222-8333-444455556666"
TAGS = {"labels": {"Strategic": "tag-strategic", "At Risk": "tag-at-risk"}}

SCHEMA = ObjectSchema(
    id="0e1d2c3b-0000-4000-8000-000000000000",
    name="accounts",
    fields=[
        FieldSchema(id="f-name", name="name", field_type="text"),
        FieldSchema(
            id=TIER_FIELD_ID,
            name="tier",
            field_type="dropdown",
            options=[FieldOption(id=GOLD, name="Gold"), FieldOption(id=SILVER, name="Silver")],
        ),
        FieldSchema(id="f-score", name="score", field_type="decimal"),
        FieldSchema(id="f-email", name="billing_email", field_type="email"),
        FieldSchema(
            id="f-products",
            name="products",
            field_type="checkboxes",
            options=[
                FieldOption(id=CORE, name="Core"),
                FieldOption(id=ANALYTICS, name="Analytics"),
                FieldOption(id=SUPPORT, name="Support"),
            ],
        ),
        FieldSchema(id="f-labels", name="labels", field_type="dynamictags"),
        FieldSchema(
            id="f-contacts",
            name="key_contacts",
            field_type="relationship",
            relation=Relation(relation_type="additional", cardinality="many_to_many"),
        ),
    ],
)

ROW = {
    "acct_name": "Acme",
    "tier": "Gold",
    "score": "1.50",
    "email": "billing@acme.example.com",
    "products": "Core, Analytics",
    "labels": ["Strategic"],
    "contacts": [C1, C2],
    "kizen_id": KIZEN_ID,
}
VALUES = {
    "name": "Acme",
    "tier": GOLD,
    "score": "1.5",
    "billing_email": "billing@acme.example.com",
    "products": sorted([CORE, ANALYTICS]),
    "labels": ["tag-strategic"],
    "key_contacts": [C1, C2],
}


def make_sync(*, fields: dict[str, dict[str, Any]] | None = None, **top: Any) -> SyncConfig:
    """The accounts sync; ``fields`` overrides per field, ``top`` overrides top-level keys."""
    mappings = {
        "name": {"column": "acct_name", "field": "name"},
        "tier": {"column": "tier", "field": "tier"},
        "score": {"column": "score", "field": "score"},
        "billing_email": {"column": "email", "field": "billing_email"},
        "products": {"column": "products", "field": "products"},
        "labels": {"column": "labels", "field": "labels"},
        "key_contacts": {"column": "contacts", "field": "key_contacts"},
    }
    for name, extra in (fields or {}).items():
        mappings[name] = {**mappings[name], **extra}
    data: dict[str, Any] = {
        "name": "accounts",
        "object": "accounts",
        "source": {"table": "accounts", "primary_key": ["id"]},
        "identity": {"match_on": "name"},
        "mode": "update",
        "fields": list(mappings.values()),
        **top,
    }
    return SyncConfig.model_validate(data)


def changed(
    row: dict[str, Any] | None = None,
    *,
    values: dict[str, Any] | None = None,
    kind: ChangeKind = ChangeKind.CHANGED,
    kizen_id: str | None = KIZEN_ID,
    archived: bool = False,
) -> ChangedRow:
    state = None
    if kind is not ChangeKind.NEW:
        state = StateRow(
            "k1", kizen_id, "old-fp", dict(VALUES if values is None else values), archived
        )
    return ChangedRow(
        kind=kind,
        source_key="k1",
        row=None if kind is ChangeKind.DELETED else {**ROW, **(row or {})},
        state=state,
        fingerprint=None if kind is ChangeKind.DELETED else "new-fp",
    )


def plan(change: ChangedRow, sync: SyncConfig | None = None, **kw: Any) -> Any:
    return plan_row(change, sync or make_sync(), SCHEMA, tags=TAGS, **kw)


def by_field(entries: tuple[dict[str, Any], ...]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        key = entry.get("name") or entry["id"]
        out.setdefault(key, []).append({k: v for k, v in entry.items() if k not in ("name", "id")})
    return out


# --- changed fields only -----------------------------------------------------------------------


def test_only_changed_fields_are_sent_and_all_values_are_kept_for_the_state() -> None:
    op = plan(changed({"tier": "silver", "score": 2}))
    assert op.op is Operation.UPDATE
    assert op.kizen_id == KIZEN_ID
    assert op.identifier == "Acme"
    assert by_field(op.entries) == {"tier": [{"value": {"id": SILVER}}], "score": [{"value": 2}]}
    assert op.changes == (
        FieldChange(field="tier", before=GOLD, after=SILVER),
        FieldChange(field="score", before="1.5", after="2"),
    )
    assert op.new_values == {**VALUES, "tier": SILVER, "score": "2"}
    assert op.fingerprint == "new-fp"
    assert not op.needs_lookup
    assert not op.restore


@pytest.mark.parametrize(
    "reformatted",
    [
        {"score": 1.5},
        {"score": "1.500"},
        {"tier": " GOLD "},
        {"products": ["Analytics", "Core", "core"]},
        {"products": '["Core","Analytics"]'},
        {"contacts": [C2.upper(), C1]},
        {"email": " billing@acme.example.com"},
    ],
)
def test_a_formatting_only_change_plans_a_noop_that_refreshes_the_state(
    reformatted: dict[str, Any],
) -> None:
    op = plan(changed(reformatted))
    assert op.op is Operation.NOOP
    assert op.entries == ()
    assert op.changes == ()
    assert op.mirror == {}
    assert op.new_values == VALUES
    assert op.fingerprint == "new-fp"
    assert op.kizen_id == KIZEN_ID


def test_a_field_mapped_after_the_last_sync_is_sent() -> None:
    values = {k: v for k, v in VALUES.items() if k != "score"}
    op = plan(changed(values=values))
    assert by_field(op.entries) == {"score": [{"value": 1.5}]}


def test_entries_address_fields_by_uuid_when_the_mapping_does() -> None:
    sync = make_sync(fields={"tier": {"field": TIER_FIELD_ID}})
    op = plan(changed({"tier": "Silver"}), sync)
    assert op.entries == ({"id": TIER_FIELD_ID, "value": {"id": SILVER}},)
    assert op.changed_fields == ["tier"]
    assert op.new_values["tier"] == SILVER


# --- multi-valued fields -----------------------------------------------------------------------


def test_managed_sets_add_and_remove_against_what_was_last_synced() -> None:
    op = plan(changed({"products": "Analytics, Support", "contacts": [C2, C3]}))
    assert op.entries == (
        {"name": "products", "add_values": [SUPPORT]},
        {"name": "products", "remove_values": [CORE]},
        {"name": "key_contacts", "add_values": [C3]},
        {"name": "key_contacts", "remove_values": [C1]},
    )
    assert op.changes[0] == FieldChange(
        field="products",
        before=sorted([CORE, ANALYTICS]),
        after=sorted([ANALYTICS, SUPPORT]),
        add=(SUPPORT,),
        remove=(CORE,),
    )
    assert op.new_values["products"] == sorted([ANALYTICS, SUPPORT])


def test_dynamic_tags_resolve_labels_through_the_tags_argument() -> None:
    op = plan(changed({"labels": "strategic, AT RISK"}))
    assert op.entries == ({"name": "labels", "add_values": ["tag-at-risk"]},)


def test_mirror_mode_hands_the_desired_set_to_the_executor() -> None:
    sync = make_sync(fields={"products": {"multi_mode": "mirror"}})
    op = plan(changed({"products": "Support"}), sync)
    assert op.op is Operation.UPDATE
    assert op.entries == ()
    assert op.mirror == {"products": (SUPPORT,)}
    assert op.changes == (
        FieldChange(
            field="products", before=sorted([CORE, ANALYTICS]), after=[SUPPORT], mirror=True
        ),
    )
    unchanged = plan(changed(), sync)
    assert unchanged.op is Operation.NOOP
    assert unchanged.mirror == {}


def test_mirror_mode_clear_empties_the_field() -> None:
    sync = make_sync(fields={"products": {"multi_mode": "mirror"}})
    assert plan(changed({"products": None}), sync).mirror == {"products": ()}


# --- NULL: clear or leave ----------------------------------------------------------------------


def test_null_with_clear_sends_null_and_removes_every_synced_value() -> None:
    op = plan(changed({"tier": None, "products": "", "contacts": float("nan")}))
    assert by_field(op.entries) == {
        "tier": [{"value": None}],
        "products": [{"remove_values": sorted([CORE, ANALYTICS])}],
        "key_contacts": [{"remove_values": [C1, C2]}],
    }
    assert op.new_values["tier"] is None
    assert op.new_values["products"] is None


def test_null_that_was_already_null_sends_nothing() -> None:
    op = plan(changed({"tier": None}, values={**VALUES, "tier": None}))
    assert op.op is Operation.NOOP


def test_null_with_leave_sends_nothing_and_keeps_the_previous_value() -> None:
    sync = make_sync(fields={"tier": {"null": "leave"}, "products": {"null": "leave"}})
    op = plan(changed({"tier": None, "products": None}), sync)
    assert op.op is Operation.NOOP
    assert op.new_values == VALUES


# --- identity ----------------------------------------------------------------------------------


def test_new_row_in_update_mode_looks_the_record_up_and_sends_every_field() -> None:
    op = plan(changed(kind=ChangeKind.NEW, row={"tier": None}))
    assert op.op is Operation.UPDATE
    assert op.needs_lookup
    assert op.kizen_id is None
    assert op.identifier == "Acme"
    fields = by_field(op.entries)
    assert fields["tier"] == [{"value": None}]
    assert fields["products"] == [{"add_values": sorted([CORE, ANALYTICS])}]
    assert fields["name"] == [{"value": "Acme"}]


def test_new_row_in_upsert_mode_creates_with_every_non_null_field_as_values() -> None:
    op = plan(changed(kind=ChangeKind.NEW, row={"tier": None}), make_sync(mode="upsert"))
    assert op.op is Operation.CREATE
    assert op.identifier == "Acme"
    assert op.kizen_id is None
    assert by_field(op.entries) == {
        "name": [{"value": "Acme"}],
        "score": [{"value": 1.5}],
        "billing_email": [{"value": "billing@acme.example.com"}],
        "products": [{"value": sorted([CORE, ANALYTICS])}],
        "labels": [{"value": ["tag-strategic"]}],
        "key_contacts": [{"value": [C1, C2]}],
    }
    assert op.new_values == {**VALUES, "tier": None}


def test_a_remembered_id_is_used_in_upsert_mode() -> None:
    op = plan(changed({"tier": "Silver"}), make_sync(mode="upsert"))
    assert op.op is Operation.UPDATE
    assert op.kizen_id == KIZEN_ID


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_null_identifier_cannot_create_or_look_up(mode: str) -> None:
    op = plan(changed(kind=ChangeKind.NEW, row={"acct_name": None}), make_sync(mode=mode))
    assert op.op is Operation.FAIL
    assert isinstance(op.error, MappingError)
    assert op.error.column == "acct_name"
    assert "identifier is NULL" in op.error.problem


def test_record_id_column_gives_the_id() -> None:
    sync = make_sync(identity={"record_id_column": "kizen_id"})
    op = plan(changed(kind=ChangeKind.NEW, row={"kizen_id": OTHER_ID.upper()}), sync)
    assert op.op is Operation.UPDATE
    assert op.kizen_id == OTHER_ID
    assert not op.needs_lookup
    assert len(op.entries) == 7


def test_record_id_column_that_moved_to_another_record_sends_every_field() -> None:
    sync = make_sync(identity={"record_id_column": "kizen_id"})
    op = plan(changed({"kizen_id": OTHER_ID}), sync)
    assert op.kizen_id == OTHER_ID
    assert by_field(op.entries)["products"] == [{"add_values": sorted([CORE, ANALYTICS])}]
    assert {e.get("name") for e in op.entries} == set(VALUES)


def test_record_id_that_is_not_a_uuid_fails_naming_the_column() -> None:
    sync = make_sync(identity={"record_id_column": "kizen_id"})
    op = plan(changed({"kizen_id": "ACME-1"}), sync)
    assert op.op is Operation.FAIL
    assert isinstance(op.error, MappingError)
    assert op.error.column == "kizen_id"
    assert "'ACME-1' is not a Kizen record id" in str(op.error)


def test_null_record_id_fails_in_update_mode_and_creates_in_upsert_mode() -> None:
    row = {"kizen_id": None}
    update = make_sync(identity={"record_id_column": "kizen_id"})
    failed = plan(changed(row, kind=ChangeKind.NEW), update)
    assert failed.op is Operation.FAIL
    assert isinstance(failed.error, MappingError)
    assert "no Kizen record id" in failed.error.problem
    upsert = make_sync(identity={"record_id_column": "kizen_id", "match_on": "name"}, mode="upsert")
    created = plan(changed(row, kind=ChangeKind.NEW), upsert)
    assert created.op is Operation.CREATE
    assert created.identifier == "Acme"


def test_null_record_id_falls_back_to_the_remembered_id() -> None:
    sync = make_sync(identity={"record_id_column": "kizen_id", "match_on": "name"}, mode="upsert")
    op = plan(changed({"kizen_id": None, "tier": "Silver"}), sync)
    assert op.op is Operation.UPDATE
    assert op.kizen_id == KIZEN_ID
    assert op.changed_fields == ["tier"]


# --- deletes, restores, full refresh -----------------------------------------------------------


def test_deleted_row_archives_the_record() -> None:
    op = plan(changed(kind=ChangeKind.DELETED))
    assert op.op is Operation.ARCHIVE
    assert op.kizen_id == KIZEN_ID
    assert op.fingerprint is None
    assert op.entries == ()


@pytest.mark.parametrize(
    ("sync", "kizen_id"),
    [(make_sync(delete={"archive": False}), KIZEN_ID), (make_sync(), None)],
)
def test_deleted_row_without_archiving_plans_forget_the_state(
    sync: SyncConfig, kizen_id: str | None
) -> None:
    op = plan(changed(kind=ChangeKind.DELETED, kizen_id=kizen_id), sync)
    assert op.op is Operation.NOOP
    assert op.new_values == {}
    assert op.fingerprint is None
    assert op.entries == ()
    assert op.forgets_state


def test_only_the_deleted_row_op_forgets_the_state() -> None:
    # A formatting-only change is a NOOP too, but one that refreshes the state row.
    noop = plan(changed({"score": "1.500"}))
    assert noop.op is Operation.NOOP
    assert not noop.forgets_state
    assert not plan(changed(kind=ChangeKind.DELETED)).forgets_state  # an archive


def test_a_row_that_came_back_after_we_archived_it_is_restored_with_every_field() -> None:
    op = plan(changed(archived=True))
    assert op.op is Operation.UPDATE
    assert op.restore
    assert op.kizen_id == KIZEN_ID
    assert {e["name"] for e in op.entries} == set(VALUES)
    assert by_field(op.entries)["products"] == [{"add_values": sorted([CORE, ANALYTICS])}]


def test_full_refresh_sends_only_what_differs_from_the_confirmed_state() -> None:
    # A backfill compares every row; a row equal to what Kizen confirmed sends nothing ...
    assert plan(changed(), full_refresh=True).op is Operation.NOOP
    # ... and a row with one changed field and one changed set sends exactly those.
    op = plan(changed({"contacts": [C2, C3], "tier": "silver"}), full_refresh=True)
    fields = by_field(op.entries)
    assert set(fields) == {"key_contacts", "tier"}
    assert fields["key_contacts"] == [{"add_values": [C3]}, {"remove_values": [C1]}]


def test_full_refresh_compares_mirror_fields_with_kizen_itself() -> None:
    sync = make_sync(fields={"key_contacts": {"multi_mode": "mirror"}})
    # Nothing changed since the last sync, but Kizen may have drifted: the executor reads it.
    op = plan(changed(), sync, full_refresh=True)
    assert op.op is Operation.UPDATE
    assert op.entries == ()
    assert op.mirror == {"key_contacts": (C1, C2)}
    assert plan(changed(), sync).op is Operation.NOOP  # an incremental run trusts the state


# --- failures ----------------------------------------------------------------------------------


def test_every_problem_of_a_row_is_collected_into_one_fail_op() -> None:
    op = plan(changed({"tier": "Platinum", "score": "abc", "email": "nope"}))
    assert op.op is Operation.FAIL
    assert op.entries == ()
    assert op.new_values == {}
    error = op.error
    assert isinstance(error, MappingError)
    assert (error.column, error.field) == ("tier", "tier")
    text = str(error)
    assert "value 'Platinum' is not an option of tier (options: Gold, Silver)" in text
    assert "and 2 more" in text
    assert "column 'score' -> field 'score': 'abc' is not a number" in text
    assert "column 'email' -> field 'billing_email': 'nope' is not a valid email address" in text
    assert [e.column for e in error.problems] == ["tier", "score", "email"]
    assert list(error.messages_by_field()) == ["tier", "score", "billing_email"]


def test_problems_of_sensitive_fields_do_not_quote_their_values() -> None:
    sync = make_sync(fields={"billing_email": {"sensitive": True}})
    op = plan(changed({"tier": "Platinum", "email": "secret-value"}), sync)
    assert "secret-value" not in str(op.error)
    assert "field 'billing_email': value rejected (details withheld" in str(op.error)


def test_a_sensitive_fields_problem_is_withheld_even_when_it_comes_first() -> None:
    # The first problem is the one the message starts with: the guard's examples, the CLI's
    # failures table and Dagster show it, so it must not quote the value either. The field
    # is addressed by UUID, which must not matter.
    sync = make_sync(fields={"tier": {"field": TIER_FIELD_ID, "sensitive": True}})
    op = plan(changed({"tier": "Secret-Tier-Label", "score": "abc"}), sync)
    assert isinstance(op.error, MappingError)
    assert "Secret-Tier-Label" not in str(op.error)
    assert str(op.error).startswith(
        "column 'tier' -> field 'tier': value rejected (details withheld: sensitive field)"
    )
    assert op.error.messages_by_field() == {
        "tier": ["value rejected (details withheld: sensitive field)"],
        "score": ["'abc' is not a number"],
    }


def test_a_missing_source_column_fails_the_row() -> None:
    change = changed()
    assert change.row is not None
    del change.row["score"]
    op = plan(change)
    assert op.op is Operation.FAIL
    assert isinstance(op.error, MappingError)
    assert op.error.column == "score"
    assert "no such column" in op.error.problem


@pytest.mark.parametrize(
    ("desired", "current", "expected"),
    [
        (["b", "a"], ["c", "b"], (("a",), ("c",))),
        ([], ["a"], ((), ("a",))),
        (["a", "a"], [], (("a",), ())),
        (["x"], ["x"], ((), ())),
    ],
)
def test_set_diff(desired: list[str], current: list[str], expected: Any) -> None:
    assert set_diff(desired, current) == expected
