"""Read-after-write verification, end to end: Kizen (the emulator) accepts a write and does not
apply it (the ``ignored_fields`` knob, what Kizen may do with a shape it does not understand),
and the run must say so instead of recording a silent success.

Judged from outside: what the emulator holds, which requests its log shows, and what the
failures list and the next run's plan say.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kizen_sync.client import ClientSettings
from kizen_sync.config import parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.engine.verify import VerifyPolicy, mismatches
from kizen_sync.models import FieldChange
from kizen_sync.schema import FieldOption, FieldSchema, ObjectSchema, Relation

GET_RECORD = "/api/records/{object_identifier}/{entity_id}"


def accounts(db: Any, rows: list[tuple[int, str, str]]) -> None:
    db.run("DROP TABLE IF EXISTS {s}accts")
    db.run("CREATE TABLE {s}accts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, tier TEXT)")
    for i, name, tier in rows:
        db.run("INSERT INTO {s}accts VALUES (:i, :n, :t)", {"i": i, "n": name, "t": tier})


def runner(db: Any, emu: Emulator, base_url: str, **sync: Any) -> SyncRunner:
    api_key, user_id, business_id = emu.credentials
    config = parse_config(
        {
            "warehouse": {
                "url": db.warehouse.engine.url.render_as_string(hide_password=False),
                "state_schema": db.schema,
            },
            "kizen": {"api_key_env": "KIZEN_SYNC_TEST_NO_SUCH_VAR"},
            "syncs": [
                {
                    "name": "accounts",
                    "object": "accounts",
                    "source": {"table": db.table("accts"), "primary_key": ["id"]},
                    "identity": {"match_on": "name"},
                    "mode": "upsert",
                    "fields": [
                        {"column": "name", "field": "name"},
                        {"column": "tier", "field": "tier"},
                    ],
                    **sync,
                }
            ],
        }
    )
    settings = ClientSettings(
        base_url=base_url, api_key=api_key, user_id=user_id, business_id=business_id
    )
    return SyncRunner(config, client_settings=settings, warehouse=db.warehouse)


@pytest.fixture
def kizen() -> Iterator[tuple[Emulator, str]]:
    emu = Emulator.demo()
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        yield emu, base_url


def _tiers(emu: Emulator) -> dict[str, str | None]:
    out = {}
    for record in emu.records("accounts"):
        values = {f["name"]: f.get("value") for f in record["fields"].values()}
        if str(values.get("name", "")).startswith("V"):
            tier = values.get("tier")
            out[values["name"]] = tier["name"] if tier else None
    return out


def test_a_write_kizen_accepts_but_does_not_apply_fails_the_record(db, kizen) -> None:
    emu, base_url = kizen
    accounts(db, [(1, "V1", "Gold"), (2, "V2", "Silver")])
    emu.set_knobs(ignored_fields=["tier"])
    run = runner(db, emu, base_url, verify="all")
    report = run.run("accounts")
    assert (report.status, report.counts.failed) == ("failed", 2)
    assert _tiers(emu) == {"V1": None, "V2": None}  # what Kizen holds
    messages = {f["source_key"]: f["message"] for f in report.failures}
    assert messages["1"] == "accepted but not applied: field tier holds nothing (sent 'Gold')"
    assert messages["2"] == "accepted but not applied: field tier holds nothing (sent 'Silver')"
    failures = {row["source_key"]: row for row in run.open_failures("accounts")}
    assert failures["1"]["error_class"] == "NotAppliedError"
    # Nothing was confirmed: the next run sends both records again.
    assert run.plan("accounts").planned == 2
    emu.set_knobs(ignored_fields=[])
    report = run.run("accounts")
    assert (report.status, report.counts.failed) == ("success", 0)
    assert _tiers(emu) == {"V1": "Gold", "V2": "Silver"}
    assert run.open_failures("accounts") == []


def test_the_first_run_verifies_by_default_and_later_runs_do_not(db, kizen) -> None:
    emu, base_url = kizen
    accounts(db, [(i, f"V{i}", "Gold") for i in range(1, 4)])
    emu.set_knobs(ignored_fields=["tier"])
    run = runner(db, emu, base_url)  # no verify: in the sync file
    emu.request_log.reset()
    report = run.run("accounts")
    assert report.counts.failed == 3  # no run succeeded yet: the first records are read back
    assert emu.request_log.total(method="GET", route=GET_RECORD) == 3
    emu.set_knobs(ignored_fields=[])
    assert run.run("accounts").status == "success"
    # Once a run succeeded nothing is read back by default, so a dropped write goes unseen:
    # what `verify:` in the sync file is for.
    emu.set_knobs(ignored_fields=["tier"])
    accounts(db, [(i, f"V{i}", "Silver") for i in range(1, 4)])
    emu.request_log.reset()
    report = run.run("accounts")
    assert (report.status, report.counts.updated) == ("success", 3)
    assert emu.request_log.total(method="GET", route=GET_RECORD) == 0
    assert _tiers(emu) == {"V1": "Gold", "V2": "Gold", "V3": "Gold"}


def test_a_sample_rate_reads_back_the_same_records_every_run(db, kizen) -> None:
    emu, base_url = kizen
    accounts(db, [(i, f"V{i}", "Gold") for i in range(1, 41)])
    run = runner(db, emu, base_url, verify={"sample": 0.25})
    emu.request_log.reset()
    assert run.run("accounts").status == "success"
    policy = VerifyPolicy(rate=0.25)
    expected = sum(policy.chosen(str(i)) for i in range(1, 41))
    assert 0 < expected < 40
    assert emu.request_log.total(method="GET", route=GET_RECORD) == expected


# --- the comparison itself ------------------------------------------------------------------

TIER = FieldSchema(
    id="f-tier",
    name="tier",
    field_type="dropdown",
    options=[FieldOption(id="gold", name="Gold"), FieldOption(id="silver", name="Silver")],
)
TAGS = FieldSchema(id="f-tags", name="tags", field_type="dynamictags")
PEOPLE = FieldSchema(
    id="f-people",
    name="people",
    field_type="relationship",
    relation=Relation(cardinality="many_to_many"),
)
SCHEMA = ObjectSchema(id="o", name="accounts", fields=[TIER, TAGS, PEOPLE])


@pytest.mark.parametrize(
    ("change", "held", "found"),
    [
        (FieldChange("tier", after="gold"), "gold", None),
        (FieldChange("tier", after="gold"), "silver", ("tier", "'Silver'", "'Gold'")),
        (FieldChange("tier", after=None), None, None),
        (FieldChange("tier", after=None), "gold", ("tier", "'Gold'", "nothing")),
        # managed sets: what we added is there, what we removed is gone; the rest is theirs
        (FieldChange("tags", add=("a",), remove=("b",)), ["a", "c"], None),
        (
            FieldChange("tags", add=("a",), remove=("b",)),
            ["b", "c"],
            ("tags", "['b', 'c']", "+a, -b"),
        ),
        # mirror: exactly the desired set
        (FieldChange("people", after=["x", "y"], mirror=True), ["y", "x"], None),
        (
            FieldChange("people", after=["x"], mirror=True),
            ["x", "y"],
            ("people", "['x', 'y']", "['x']"),
        ),
    ],
)
def test_mismatches_compare_what_kizen_holds_with_what_was_sent(change, held, found) -> None:
    result = mismatches(SCHEMA, [change], {change.field: held})
    assert result == ([found] if found else [])


def test_a_policy_chooses_by_key_not_by_chance() -> None:
    policy = VerifyPolicy(rate=0.5)
    keys = [str(i) for i in range(200)]
    first = [policy.chosen(k) for k in keys]
    assert first == [VerifyPolicy(rate=0.5).chosen(k) for k in keys]
    assert 60 < sum(first) < 140
    assert not any(VerifyPolicy().chosen(k) for k in keys)
    assert all(VerifyPolicy(rate=1.0).chosen(k) for k in keys)
