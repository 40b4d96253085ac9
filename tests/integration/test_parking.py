"""Known-bad rows never hold a sync hostage (SQLite and PostgreSQL, emulator over HTTP).

A table where a tenth of the rows can never be synced: every later run sends exactly the rows
that changed (counted in the emulator's own request log), succeeds when nothing new failed,
and still lists every bad row with its reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from kizen_sync.errors import GuardError
from kizen_sync.models import RunOptions
from tests.integration.conftest import Env, people, person

BAD = {3, 13, 23}  # 10 % of 30 rows: an option Kizen does not have


def table(**edits: dict[str, Any]) -> list[tuple[Any, ...]]:
    """30 people, rows in BAD with an unknown e-mail status; ``edits`` by row number."""
    rows = []
    for i in range(1, 31):
        values: dict[str, Any] = {"status": "No Such Status"} if i in BAD else {}
        values |= edits.get(f"r{i}", {})
        rows.append(person(i, **values))
    return rows


def test_only_changed_rows_are_sent_and_known_bad_rows_do_not_fail_the_run(env: Env) -> None:
    people(env.db, table())
    runner = env.runner()
    first = runner.run("contacts")
    assert (first.status, first.counts.created, first.counts.failed) == ("failed", 27, 3)

    # Nothing changed: no request at all, and the run succeeds.
    env.emu.request_log.reset()
    second = runner.run("contacts")
    assert (second.status, second.planned, second.counts.failed, second.parked) == (
        "success",
        0,
        0,
        3,
    )
    assert env.emu.request_log.total() == 0
    assert second.parked_since is not None
    assert second.parked_since <= second.finished_at

    # Two good rows edited: exactly two writes, one each, and still a success.
    people(env.db, table(r1={"first": "Ann"}, r2={"first": "Bob"}))
    env.emu.request_log.reset()
    third = runner.run("contacts")
    assert (third.status, third.counts.updated, third.parked) == ("success", 2, 3)
    assert env.writes() == 2
    assert env.contacts()["p1@example.com"]["first_name"] == "Ann"

    # Every bad row is listed with its reason, all of them parked.
    listing = runner.store.failures.listing("contacts")
    assert (listing.total, listing.parked, listing.retrying) == (3, 3, 0)
    assert {r["source_key"] for r in listing.rows} == {"3", "13", "23"}
    [group] = listing.groups
    assert (group.count, group.field) == (3, "email_status")
    assert "No Such Status" in group.example
    assert group.reason.startswith("MappingError · email_status:")


def test_a_bad_row_that_changes_is_sent_again_and_counts_as_new(env: Env) -> None:
    people(env.db, table())
    runner = env.runner(failure_threshold=0.5)
    runner.run("contacts")
    # Row 3 changes but stays bad; row 13 gets fixed.
    people(env.db, table(r3={"first": "Still bad"}, r13={"status": "Opted In"}))
    env.emu.request_log.reset()
    report = runner.run("contacts")
    assert (report.counts.created, report.counts.failed, report.parked) == (1, 1, 1)
    assert report.new_failures == 1
    assert env.writes() == 1  # row 13's create; row 3 failed mapping before any request
    assert "p13@example.com" in env.contacts()


def test_editing_the_mapping_sends_parked_rows_again(env: Env) -> None:
    people(env.db, table())
    runner = env.runner(failure_threshold=1.0)
    runner.run("contacts")
    fields = env.runner().config.syncs[0].model_dump(mode="json")["fields"]
    # Same values, but the mapping moved (format of the tags column spelled out): the parked
    # rows are planned again, and fail again; the good rows need no request.
    fields[2]["format"] = "auto"
    env.emu.request_log.reset()
    report = env.runner(fields=fields, failure_threshold=1.0).run("contacts")
    assert (report.parked, report.counts.failed, report.counts.noop) == (0, 3, 27)
    assert env.writes() == 0


def test_reject_guard_and_threshold_count_only_new_failures_and_retry_is_never_stopped(
    env: Env,
) -> None:
    # 8 of 10 rows bad: a first run lets them through on purpose, and they are parked.
    bad = {f"r{i}": {"status": "Bogus"} for i in range(1, 9)}
    rows = [person(i, **bad.get(f"r{i}", {})) for i in range(1, 11)]
    people(env.db, rows)
    assert env.runner(max_reject_rate=1.0, failure_threshold=1.0).run("contacts").counts.failed == 8

    # Default guards (50 %, threshold 0): one real edit goes through, and the run succeeds.
    runner = env.runner()
    rows[9] = person(10, first="Edited")
    people(env.db, rows)
    report = runner.run("contacts")
    assert (report.status, report.counts.updated, report.parked) == ("success", 1, 8)
    assert runner.check_guards("contacts").passed

    # Two bad rows are fixed; a retry re-sends all eight and is not stopped by the six that
    # are still bad; their failures are known, so the retry succeeds.
    rows[0], rows[1] = person(1), person(2)
    people(env.db, rows)
    retried = runner.retry("contacts")
    assert (retried.status, retried.counts.created, retried.counts.failed) == ("success", 2, 6)
    assert (retried.known_failed, retried.new_failures) == (6, 0)
    assert {"p1@example.com", "p2@example.com"} <= set(env.contacts())

    # --include-parked does the same from a normal run.
    report = runner.run("contacts", RunOptions(include_parked=True))
    assert (report.status, report.counts.failed, report.known_failed) == ("success", 6, 6)

    # A run with six *new* bad rows is still stopped by the guard before any write.
    rows = [person(i, status="Bogus") for i in range(11, 21)]
    people(env.db, [*[person(i) for i in range(1, 11)], *rows])
    env.emu.request_log.reset()
    with pytest.raises(GuardError, match="10 of 17 planned records"):
        runner.run("contacts", RunOptions())
    assert env.writes() == 0
