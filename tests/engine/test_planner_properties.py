"""Property: applying a plan to a Kizen record that matched the previous source row yields the
new source row, and values people added in Kizen survive managed mode.

Kizen is modelled as a dict of canonical values (sets for multi-valued fields). Entries are
applied the way Kizen applies them (``value`` replaces, ``add_values`` / ``remove_values``
edit the set, in request order); mirror fields are resolved the way the executor does it,
with ``set_diff`` against the model's current values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kizen_sync import mapping
from kizen_sync.config import SyncConfig
from kizen_sync.engine.planner import plan_row, set_diff
from kizen_sync.models import ChangedRow, ChangeKind, Operation, PlannedOp, StateRow
from kizen_sync.schema import FieldOption, FieldSchema, ObjectSchema, Relation

KIZEN_ID = "7f1e2d3c-0000-4000-8000-00000000000a"
CONTACTS = [f"0ca33143-0000-4000-8000-00000000000{i}" for i in range(1, 6)]
PRODUCTS = ["Core", "Analytics", "Support", "Integrations"]

SCHEMA = ObjectSchema(
    id="0e1d2c3b-0000-4000-8000-000000000000",
    name="accounts",
    fields=[
        FieldSchema(id="f-name", name="name", field_type="text"),
        FieldSchema(
            id="f-tier",
            name="tier",
            field_type="dropdown",
            options=[FieldOption(id=f"opt-{n}", name=n) for n in ("Gold", "Silver", "Bronze")],
        ),
        FieldSchema(id="f-score", name="score", field_type="decimal"),
        FieldSchema(
            id="f-products",
            name="products",
            field_type="checkboxes",
            options=[FieldOption(id=f"opt-{n.lower()}", name=n) for n in PRODUCTS],
        ),
        FieldSchema(
            id="f-contacts",
            name="key_contacts",
            field_type="relationship",
            relation=Relation(relation_type="additional", cardinality="many_to_many"),
        ),
    ],
)
FIELDS = {f.name: f for f in SCHEMA.fields}
COLUMNS = {
    "name": "name",
    "tier": "tier",
    "score": "score",
    "products": "products",
    "key_contacts": "contacts",
}
MULTI = ("products", "key_contacts")
ALL_IDS = {
    "products": {f"opt-{n.lower()}" for n in PRODUCTS},
    "key_contacts": set(CONTACTS),
}

blank = st.sampled_from([None, "", float("nan")])
rows = st.fixed_dictionaries(
    {
        "name": st.one_of(blank, st.sampled_from(["Acme", "Acme ", "Globex", "Zürich 🚀"])),
        "tier": st.one_of(blank, st.sampled_from(["Gold", "gold", " GOLD", "Silver", "Bronze"])),
        "score": st.one_of(
            blank,
            st.sampled_from([1.5, "1.50", Decimal("1.5"), Decimal("1.50"), 2, "2.0", "0", -3]),
        ),
        "products": st.one_of(
            blank,
            st.lists(st.sampled_from([*PRODUCTS, "core", " Support "]), max_size=4),
            st.lists(st.sampled_from(PRODUCTS), max_size=4).map(", ".join),
        ),
        "contacts": st.one_of(
            blank,
            st.lists(st.sampled_from([*CONTACTS, CONTACTS[0].upper()]), max_size=4),
        ),
    }
)


def make_sync(null: str, multi_mode: str) -> SyncConfig:
    fields = [
        {"column": column, "field": name, "null": null}
        | ({"multi_mode": multi_mode} if name in MULTI else {})
        for name, column in COLUMNS.items()
    ]
    return SyncConfig.model_validate(
        {
            "name": "accounts",
            "object": "accounts",
            "source": {"table": "accounts", "primary_key": ["id"]},
            "identity": {"match_on": "name"},
            "fields": fields,
        }
    )


def canonical(row: dict[str, Any], sync: SyncConfig) -> dict[str, Any]:
    return {
        spec.field: mapping.coerce(FIELDS[spec.field], spec, row[spec.column])
        for spec in sync.fields
    }


def kizen_from(values: dict[str, Any]) -> dict[str, Any]:
    """The Kizen record holding exactly these canonical values."""
    return {k: set(v or ()) if k in MULTI else v for k, v in values.items()}


def apply(record: dict[str, Any], op: PlannedOp) -> dict[str, Any]:
    """Kizen applying the op's entries, then the executor's mirror diff."""
    out = {k: set(v) if isinstance(v, set) else v for k, v in record.items()}
    for entry in op.entries:
        name = entry["name"]
        field = FIELDS[name]
        if "value" in entry:
            if name in MULTI:
                out[name] = set(entry["value"] or ())
            else:
                out[name] = mapping.canonical_from_read(field, entry["value"])
        elif "add_values" in entry:
            out[name] |= set(entry["add_values"])
        else:
            out[name] -= set(entry["remove_values"])
    for name, desired in op.mirror.items():
        add, remove = set_diff(desired, out[name])
        out[name] = (out[name] | set(add)) - set(remove)
    return out


def change_of(row: dict[str, Any], previous: dict[str, Any]) -> ChangedRow:
    state = StateRow("k1", KIZEN_ID, "old-fp", previous)
    return ChangedRow(ChangeKind.CHANGED, "k1", row, state, "new-fp")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    old_row=rows,
    new_row=rows,
    null=st.sampled_from(["clear", "leave"]),
    multi_mode=st.sampled_from(["managed", "mirror"]),
    full_refresh=st.booleans(),
    extras=st.fixed_dictionaries(
        {name: st.sets(st.sampled_from(sorted(ids)), max_size=2) for name, ids in ALL_IDS.items()}
    ),
)
def test_applying_the_plan_yields_the_new_source_and_keeps_values_added_in_kizen(
    old_row: dict[str, Any],
    new_row: dict[str, Any],
    null: str,
    multi_mode: str,
    full_refresh: bool,
    extras: dict[str, set[str]],
) -> None:
    sync = make_sync(null, multi_mode)
    before, after = canonical(old_row, sync), canonical(new_row, sync)
    kizen = kizen_from(before)
    added_by_people = {name: extras[name] - kizen[name] for name in MULTI}
    for name in MULTI:
        kizen[name] |= added_by_people[name]

    op = plan_row(change_of(new_row, before), sync, SCHEMA, full_refresh=full_refresh)
    result = apply(kizen, op)

    expected = kizen_from(after)
    for name, value in after.items():
        if value is None and null == "leave":
            expected[name] = kizen_from(before)[name]
    for name in MULTI:
        left = after[name] is None and null == "leave"
        moved = full_refresh or (before[name] or []) != (after[name] or [])
        if not (multi_mode == "mirror" and moved and not left):
            expected[name] |= added_by_people[name]
    assert result == expected
    assert op.op in (Operation.UPDATE, Operation.NOOP)
    assert op.new_values == {
        name: (before[name] if value is None and null == "leave" else value)
        for name, value in after.items()
    }


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    row=rows,
    null=st.sampled_from(["clear", "leave"]),
    multi_mode=st.sampled_from(["managed", "mirror"]),
)
def test_an_unchanged_row_plans_a_noop_without_entries(
    row: dict[str, Any], null: str, multi_mode: str
) -> None:
    sync = make_sync(null, multi_mode)
    op = plan_row(change_of(row, canonical(row, sync)), sync, SCHEMA)
    assert op.op is Operation.NOOP
    assert op.entries == ()
    assert op.mirror == {}
    assert op.changes == ()
