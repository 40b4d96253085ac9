"""Record-level cases: rows synced with a good value, then one row gets a bad (or unusual) one.

A bad value must fail that row only, with a message naming the column, the field and the
reason, while the other rows of the run are written and the record keeps what it had; an
unusual but valid value must arrive exactly.
"""

from __future__ import annotations

from typing import Any

from kizen_sync.engine import SyncRunner
from kizen_sync.models import RunReport
from tests.support.bad_input.lab import ACCOUNTS, CONTACTS, FAILS, SYNCED, BadInput, Lab

__all__ = ["baseline", "failure_of", "synced_case", "value_case", "value_sync"]

_IDENT = {ACCOUNTS: ("name", "Acct {i}"), CONTACTS: ("email", "p{i}@example.com")}
_NOTE = {ACCOUNTS: "description", CONTACTS: "last_name"}


def value_sync(obj: str, field: str, **spec: Any) -> dict[str, Any]:
    ident, _ = _IDENT[obj]
    return {
        "object": obj,
        "source": {"table": "src", "primary_key": ["id"]},
        "identity": {"match_on": ident},
        "mode": "upsert",
        "fields": [
            {"column": "ident", "field": ident},
            {"column": "note", "field": _NOTE[obj]},
            {"column": "v", "field": field, **spec},
        ],
    }


def baseline(world: Lab, obj: str, coltype: str, good: Any, sync: dict[str, Any]) -> SyncRunner:
    """Rows 1-4 with a good value, synced; returns the runner."""
    _, pattern = _IDENT[obj]
    world.sql(f"CREATE TABLE src (id INTEGER PRIMARY KEY, ident TEXT, note TEXT, v {coltype})")
    for i in range(1, 5):
        world.sql(
            "INSERT INTO src VALUES (:i, :ident, :note, :v)",
            {"i": i, "ident": pattern.format(i=i), "note": f"note {i}", "v": good},
        )
    runner = world.runner(sync)
    report = runner.run("s")
    assert (report.counts.created, report.counts.failed) == (4, 0), report.failures
    return runner


def failure_of(report: RunReport, key: str) -> dict[str, Any]:
    rows = [f for f in report.failures if f["source_key"] == key]
    assert rows, f"row {key} did not fail: {report.failures}"
    return rows[0]


def value_case(
    name: str,
    given: str,
    field: str,
    coltype: str,
    good: Any,
    bad: Any,
    fragment: str,
    *,
    obj: str = ACCOUNTS,
    **spec: Any,
) -> BadInput:
    """Row 2 gets ``bad`` in the column mapped to ``field`` while row 3 changes a good field.

    The run must fail row 2 only, with a message naming the column, the field and
    ``fragment``; row 3's change must arrive; row 2's record keeps its previous value.
    """

    def check(world: Lab) -> None:
        sync = value_sync(obj, field, **spec)
        runner = baseline(world, obj, coltype, good, sync)
        _, pattern = _IDENT[obj]
        before = world.one(obj, pattern.format(i=2))[field]
        world.sql("UPDATE src SET v = :bad WHERE id = 2", {"bad": bad})
        world.sql("UPDATE src SET note = 'changed' WHERE id = 3")
        report = runner.run("s")
        assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
        failure = failure_of(report, "2")
        message = str(failure["message"])
        assert f"'v' -> field '{field}'" in message, message
        assert fragment in message, message
        assert world.one(obj, pattern.format(i=2))[field] == before  # nothing lost
        assert world.one(obj, pattern.format(i=3))[_NOTE[obj]] == "changed"
        failures = runner.open_failures("s")
        assert [f["source_key"] for f in failures] == ["2"]
        assert fragment in failures[0]["error_message"]
        assert field in (failures[0]["field_errors"] or "")

    return BadInput(name, given, f"row fails: {fragment}", FAILS, check)


def synced_case(
    name: str,
    given: str,
    field: str,
    coltype: str,
    value: Any,
    expected: Any,
    *,
    obj: str = ACCOUNTS,
    **spec: Any,
) -> BadInput:
    """An unusual but valid value must arrive as ``expected`` (read back from Kizen)."""

    def check(world: Lab) -> None:
        sync = value_sync(obj, field, **spec)
        runner = baseline(world, obj, coltype, None, sync)
        world.sql("UPDATE src SET v = :v WHERE id = 2", {"v": value})
        report = runner.run("s")
        assert (report.counts.updated, report.counts.failed) == (1, 0), report.failures
        _, pattern = _IDENT[obj]
        assert world.one(obj, pattern.format(i=2))[field] == expected
        assert runner.plan("s").planned == 0  # and it stays in step: nothing to re-send

    return BadInput(name, given, f"synced as {expected!r}", SYNCED, check)
