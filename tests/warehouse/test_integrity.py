"""State that cannot misroute (warehouse/integrity.py): damaged sync_state is found, refused
per record with a reason and a way out, and never turns into a write to the wrong record or
a crash of the whole run. Kizen is read back from the emulator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, text

from kizen_sync.errors import StateStoreError
from tests.support.contacts import Contacts, contacts_world


@pytest.fixture
def world(db: Any) -> Iterator[Contacts]:
    with contacts_world(db) as contacts:
        yield contacts


def _state_sql(world: Contacts, sql: str, **params: Any) -> None:
    table = world.store().tables.state
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    with world.db.warehouse.engine.begin() as conn:
        conn.execute(text(sql.replace("{state}", name)), params)


def _failures(world: Contacts) -> dict[str, dict[str, Any]]:
    return {f["source_key"]: f for f in world.store().open_failures("people")}


def _three(world: Contacts) -> dict[str, str]:
    world.source(
        [
            (1, "ann@example.com", "Ann"),
            (2, "bob@example.com", "Bob"),
            (3, "cat@example.com", "Cat"),
        ]
    )
    with world.runner() as runner:
        runner.run("people")
    return {e: r[0]["id"] for e, r in world.kizen().items()}


def test_two_state_rows_holding_one_record_are_both_refused_until_one_is_fixed(
    world: Contacts,
) -> None:
    ids = _three(world)
    # Damage: row 2's state points at Ann's record; then Bob's row changes.
    _state_sql(
        world,
        "UPDATE {state} SET kizen_id = :id WHERE source_key = '2'",
        id=ids["ann@example.com"],
    )
    world.db.run("UPDATE {s}people SET first_name = 'Robert' WHERE id = 2")
    writes = world.writes()
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert world.writes() == writes  # no PATCH to Ann's record, nor to any other
    assert world.live() == {
        "ann@example.com": "Ann",
        "bob@example.com": "Bob",
        "cat@example.com": "Cat",
    }
    failures = _failures(world)
    assert sorted(failures) == ["1", "2"]  # both refused, the unchanged one included
    message = failures["2"]["error_message"]
    assert ids["ann@example.com"] in message
    assert "'1'" in message
    assert "sync_state" in message  # the way out
    assert report.counts.failed == 2
    # The way out: delete the wrong state row; the row is found again by its e-mail.
    _state_sql(world, "DELETE FROM {state} WHERE source_key = '2'")
    with world.runner() as runner:
        report = runner.run("people")
    assert report.status == "success", report.message
    assert world.live() == {
        "ann@example.com": "Ann",
        "bob@example.com": "Robert",
        "cat@example.com": "Cat",
    }
    assert {e: r[0]["id"] for e, r in world.kizen().items()} == ids  # no record created
    assert _failures(world) == {}


def test_a_corrupt_state_row_fails_its_record_and_the_others_are_synced(
    world: Contacts,
) -> None:
    ids = _three(world)
    _state_sql(world, "UPDATE {state} SET values_json = '{not json' WHERE source_key = '1'")
    world.db.run("UPDATE {s}people SET first_name = first_name || '!'")
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert (report.counts.updated, report.counts.failed) == (2, 1)
    assert world.live() == {
        "ann@example.com": "Ann",  # kept as Kizen had it
        "bob@example.com": "Bob!",
        "cat@example.com": "Cat!",
    }
    failure = _failures(world)["1"]
    assert failure["error_class"] == "RowStateError"
    assert "values_json" in failure["error_message"]
    assert "sync_state" in failure["error_message"]
    _state_sql(world, "DELETE FROM {state} WHERE source_key = '1'")  # the way out
    with world.runner() as runner:
        assert runner.run("people").status == "success"
    assert world.live()["ann@example.com"] == "Ann!"
    assert {e: r[0]["id"] for e, r in world.kizen().items()} == ids


def test_a_dropped_state_table_is_created_again_and_no_record_is_duplicated(
    world: Contacts, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _three(world)
    _state_sql(world, "DROP TABLE {state}")
    world.db.run("UPDATE {s}people SET first_name = 'Catherine' WHERE id = 3")
    with caplog.at_level(logging.WARNING), world.runner() as runner:
        report = runner.run("people")
    assert report.status == "success", report.message
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "was missing and has been created again" in said
    assert {e: [r["id"] for r in rs] for e, rs in world.kizen().items()} == {
        e: [i] for e, i in ids.items()
    }
    assert world.live()["cat@example.com"] == "Catherine"
    with world.runner() as runner:
        assert runner.plan("people").planned == 0


def test_a_lost_state_row_is_found_again_by_its_email(world: Contacts) -> None:
    ids = _three(world)
    _state_sql(world, "DELETE FROM {state} WHERE source_key = '2'")
    world.db.run("UPDATE {s}people SET first_name = 'Bobby' WHERE id = 2")
    with world.runner() as runner:
        report = runner.run("people")
    assert report.status == "success", report.message
    assert {e: [r["id"] for r in rs] for e, rs in world.kizen().items()} == {
        e: [i] for e, i in ids.items()
    }
    assert world.live()["bob@example.com"] == "Bobby"
    assert world.store().load_state("people", ["2"])["2"].kizen_id == ids["bob@example.com"]


def test_damaged_state_rows_fail_one_by_one_and_the_rest_is_synced(world: Contacts) -> None:
    world.source([(i, f"p{i}@example.com", f"P{i}") for i in range(1, 9)])
    with world.runner() as runner:
        runner.run("people")
    ids = {e: r[0]["id"] for e, r in world.kizen().items()}
    # Three rows' state points at their neighbour's record; one of them and one healthy
    # row change. Six refused rows among two changes once stopped every run of the sync
    # with a reject-rate GuardError ("cannot be mapped", "the source changed?").
    for key in (1, 3, 5):
        _state_sql(
            world,
            "UPDATE {state} SET kizen_id = :id WHERE source_key = :key",
            id=ids[f"p{key + 1}@example.com"],
            key=str(key),
        )
    world.db.run("UPDATE {s}people SET first_name = 'New' WHERE id IN (1, 8)")
    with world.runner(failure_threshold=1.0) as runner:
        plan = runner.plan("people")
        report = runner.run("people")
    # The plan shows what the run does: row 1 fails, it is no update of row 2's record.
    assert {op.source_key: op.op.value for op in plan.plan_sample} == {
        **{str(k): "fail" for k in range(1, 7)},
        "8": "update",
    }
    assert (report.counts.updated, report.counts.failed) == (1, 6)
    assert report.planned == 7  # the damaged rows that did not change are planned failures
    assert world.live()["p8@example.com"] == "New"
    assert world.live()["p1@example.com"] == "P1"
    assert world.live()["p2@example.com"] == "P2"  # no misrouted PATCH
    assert sorted(_failures(world)) == [str(k) for k in range(1, 7)]


def test_plan_names_a_dropped_state_table_and_creates_nothing(world: Contacts) -> None:
    _three(world)
    _state_sql(world, "DROP TABLE {state}")
    store = world.store()
    with world.runner() as runner, pytest.raises(StateStoreError) as raised:
        runner.plan("people")
    message = raised.value.message
    assert store.tables.state.name in message
    assert "is missing" in message
    assert "kizen-sync run" in message  # the way out
    assert "matched to its Kizen record by its identifier" in message
    with world.db.warehouse.engine.connect() as conn:
        names = inspect(conn).get_table_names(schema=store.tables.state.schema)
    assert store.tables.state.name not in names  # plan wrote nothing
