"""Cases where a record could be lost, misrouted or wrongly archived: re-keyed tables,
identity collisions, damaged state, bytes that are not text, a source emptied mid-run.

Each builds its situation in a :class:`~tests.support.bad_input.lab.Lab` (SQLite, the
emulator in process) on one contacts sync, and checks what Kizen holds afterwards: no record
archived or written that should not be, no duplicate, and every refused row failed with a
message that names it. The same situations run on PostgreSQL too, over HTTP, in
``tests/engine/test_resolve.py``, ``tests/engine/test_budget.py`` and ``tests/warehouse/``.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from kizen_sync.engine import runner as runner_module
from kizen_sync.errors import GuardError
from tests.support.bad_input.lab import CONTACTS, ERROR, FAILS, SYNCED, BadInput, Lab

__all__ = ["INTEGRITY"]

STATE = "kizen_sync_sync_state"
PEOPLE = {
    "object": CONTACTS,
    "source": {"table": "people", "primary_key": ["id"]},
    "identity": {"match_on": "email"},
    "mode": "upsert",
    "delete": {"archive": True, "max_archive_fraction": 0.05},
    "failure_threshold": 1.0,
    "fields": [
        {"column": "email", "field": "email"},
        {"column": "first_name", "field": "first_name"},
    ],
}


def _people(world: Lab, rows: list[tuple[Any, ...]], key_type: str = "INTEGER") -> None:
    world.sql("DROP TABLE IF EXISTS people")
    world.sql(f"CREATE TABLE people (id {key_type} PRIMARY KEY, email TEXT, first_name TEXT)")
    for row in rows:
        world.sql("INSERT INTO people VALUES (:i, :e, :f)", dict(zip("ief", row, strict=True)))


def _synced(world: Lab, n: int = 3) -> dict[str, str]:
    """Rows 1..n synced; returns {e-mail: record id}."""
    _people(world, [(i, f"p{i}@example.com", f"P{i}") for i in range(1, n + 1)])
    report = world.runner(PEOPLE).run("s")
    assert (report.counts.created, report.counts.failed) == (n, 0), report.failures
    return {
        f"p{i}@example.com": world.one(CONTACTS, f"p{i}@example.com")["_id"]
        for i in range(1, n + 1)
    }


def _ids(world: Lab, emails: dict[str, str]) -> dict[str, list[tuple[str, bool]]]:
    return {e: [(r["_id"], r["_archived"]) for r in world.records(CONTACTS, e)] for e in emails}


def _failed(report: Any, keys: set[str], error_class: str, *fragments: str) -> None:
    failures = {f["source_key"]: f for f in report.failures}
    assert set(failures) == keys, report.failures
    for failure in failures.values():
        assert failure["error_class"] == error_class, failure
        for fragment in fragments:
            assert fragment in failure["message"], (fragment, failure["message"])


def re_keyed_table(world: Lab) -> None:
    ids = _synced(world)
    _people(world, [(100 + i, f"p{i}@example.com", f"P{i}") for i in range(1, 4)])
    world.sql("UPDATE people SET first_name = 'Renamed' WHERE id = 102")
    writes = world.writes()
    report = world.runner(PEOPLE).run("s")
    assert report.status == "success", report.message
    assert (report.counts.archived, report.counts.created) == (0, 0)
    assert world.writes() - writes == 1  # the renamed one only
    assert _ids(world, ids) == {e: [(i, False)] for e, i in ids.items()}
    assert world.one(CONTACTS, "p2@example.com")["first_name"] == "Renamed"


def emails_differing_in_case(world: Lab) -> None:
    _people(
        world, [(1, "ann@example.com", "Ann"), (2, "ANN@example.com", "Annie"), (3, "c@x.io", "C")]
    )
    report = world.runner(PEOPLE).run("s")
    _failed(report, {"1", "2"}, "IdentityCollisionError", "'1', '2'", "ann@example.com")
    assert world.records(CONTACTS, "ann@example.com") == []  # nothing sent for them
    assert world.one(CONTACTS, "c@x.io")["first_name"] == "C"


def identifier_of_a_synced_row(world: Lab) -> None:
    ids = _synced(world)
    world.sql("INSERT INTO people VALUES (9, 'P1@EXAMPLE.COM', 'Impostor')")
    report = world.runner(PEOPLE).run("s")
    _failed(report, {"9"}, "IdentityCollisionError", "'1'")
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "P1"
    assert _ids(world, ids) == {e: [(i, False)] for e, i in ids.items()}


def record_id_in_two_rows(world: Lab) -> None:
    ids = _synced(world)
    world.sql("ALTER TABLE people ADD COLUMN kizen_id TEXT")
    for i in range(1, 4):
        world.sql(
            "UPDATE people SET kizen_id = :k WHERE id = :i", {"k": ids[f"p{i}@example.com"], "i": i}
        )
    world.sql("UPDATE people SET kizen_id = :k WHERE id = 2", {"k": ids["p1@example.com"]})
    sync = PEOPLE | {"identity": {"record_id_column": "kizen_id"}, "mode": "update"}
    report = world.runner(sync).run("s")
    _failed(report, {"1", "2"}, "IdentityCollisionError", ids["p1@example.com"])
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "P1"
    assert world.one(CONTACTS, "p2@example.com")["first_name"] == "P2"


def state_rows_sharing_a_record(world: Lab) -> None:
    ids = _synced(world)
    world.sql(
        f"UPDATE {STATE} SET kizen_id = :id WHERE source_key = '2'", {"id": ids["p1@example.com"]}
    )
    world.sql("UPDATE people SET first_name = 'Changed' WHERE id = 2")
    writes = world.writes()
    report = world.runner(PEOPLE).run("s")
    assert world.writes() == writes  # no PATCH to the record row 2's state points at
    _failed(report, {"1", "2"}, "IdentityCollisionError", STATE, ids["p1@example.com"])
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "P1"


def corrupt_state_row(world: Lab) -> None:
    _synced(world)
    world.sql(f"UPDATE {STATE} SET values_json = '{{not json' WHERE source_key = '1'")
    world.sql("UPDATE people SET first_name = first_name || '!'")
    report = world.runner(PEOPLE).run("s")
    _failed(report, {"1"}, "RowStateError", "values_json", STATE)
    assert report.counts.updated == 2
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "P1"


def dropped_state_table(world: Lab) -> None:
    ids = _synced(world)
    world.sql(f"DROP TABLE {STATE}")
    world.sql("UPDATE people SET first_name = 'Back' WHERE id = 3")
    report = world.runner(PEOPLE).run("s")
    assert report.status == "success", report.message
    assert _ids(world, ids) == {e: [(i, False)] for e, i in ids.items()}  # no duplicate
    assert world.one(CONTACTS, "p3@example.com")["first_name"] == "Back"


def lost_state_row(world: Lab) -> None:
    ids = _synced(world)
    world.sql(f"DELETE FROM {STATE} WHERE source_key = '2'")
    report = world.runner(PEOPLE).run("s")
    assert report.status == "success", report.message
    assert _ids(world, ids) == {e: [(i, False)] for e, i in ids.items()}


def invalid_utf8(world: Lab) -> None:
    _synced(world)
    world.sql("UPDATE people SET first_name = CAST(X'426fff62' AS TEXT) WHERE id = 2")
    world.sql("UPDATE people SET first_name = 'Third' WHERE id = 3")
    report = world.runner(PEOPLE).run("s")
    _failed(report, {"2"}, "RowStateError", "'first_name'", "UTF-8")
    assert world.one(CONTACTS, "p2@example.com")["first_name"] == "P2"
    assert world.one(CONTACTS, "p3@example.com")["first_name"] == "Third"


def source_emptied_mid_run(world: Lab) -> None:
    ids = _synced(world, n=40)
    world.sql("UPDATE people SET first_name = first_name || '+'")  # 40 updates planned
    state = {"run_row": False, "done": False}

    def reload(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The ETL's DELETE lands right after the plan (the run row is written), before the
        # apply reads the source again.
        if state["done"]:
            return
        if statement.startswith("INSERT INTO kizen_sync_runs"):
            state["run_row"] = True
        elif state["run_row"]:
            state["done"] = True
            world.sql("DELETE FROM people")

    event.listen(world.warehouse.engine, "before_cursor_execute", reload)
    saved = runner_module.PLAN_IN_MEMORY
    runner_module.PLAN_IN_MEMORY = 5  # a plan too large to keep: the source is read twice
    writes = world.writes()
    try:
        with pytest.raises(GuardError, match="would archive 40 of 40"):
            world.runner(PEOPLE).run("s")
    finally:
        runner_module.PLAN_IN_MEMORY = saved
        event.remove(world.warehouse.engine, "before_cursor_execute", reload)
    assert world.writes() == writes
    assert _ids(world, ids) == {e: [(i, False)] for e, i in ids.items()}


INTEGRITY: list[BadInput] = [
    BadInput(
        "re_keyed_table",
        "every row back under a new primary key (same e-mails), one renamed",
        "synced: each record updated in place under its new key; none archived or created",
        SYNCED,
        re_keyed_table,
    ),
    BadInput(
        "emails_differing_in_case",
        "two new rows 'ann@example.com' and 'ANN@example.com'",
        "both rows fail: IdentityCollisionError naming rows '1', '2' and the e-mail; no record",
        FAILS,
        emails_differing_in_case,
    ),
    BadInput(
        "identifier_of_a_synced_row",
        "a new row whose e-mail is a synced row's in upper case",
        "row fails: IdentityCollisionError, the record belongs to row '1'; it keeps its values",
        FAILS,
        identifier_of_a_synced_row,
    ),
    BadInput(
        "record_id_in_two_rows",
        "record_id_column: two rows hold one Kizen record id",
        "both rows fail: IdentityCollisionError naming the rows and the record id",
        FAILS,
        record_id_in_two_rows,
    ),
    BadInput(
        "state_rows_sharing_a_record",
        "sync_state: row 2's kizen_id overwritten with row 1's, then row 2 changes",
        "both rows fail naming the record and the sync_state rows to delete; no write at all",
        FAILS,
        state_rows_sharing_a_record,
    ),
    BadInput(
        "corrupt_state_row",
        "sync_state: values_json '{not json' on a row that changes",
        "row fails: RowStateError naming values_json and the sync_state row; others synced",
        FAILS,
        corrupt_state_row,
    ),
    BadInput(
        "dropped_state_table",
        "the sync_state table dropped between runs",
        "synced: the table is created again (warning), rows matched by e-mail, no duplicate",
        SYNCED,
        dropped_state_table,
    ),
    BadInput(
        "lost_state_row",
        "one sync_state row deleted",
        "synced: the row is matched to its record by e-mail, no duplicate",
        SYNCED,
        lost_state_row,
    ),
    BadInput(
        "invalid_utf8",
        "first_name holds bytes that are not UTF-8 (SQLite)",
        "row fails: RowStateError naming the row and 'first_name'; the others are synced",
        FAILS,
        invalid_utf8,
    ),
    BadInput(
        "source_emptied_mid_run",
        "a plan streamed twice, the source emptied after the plan (ETL reload)",
        "GuardError: would archive 40 of 40; not one request, nothing archived",
        ERROR,
        source_emptied_mid_run,
    ),
]
