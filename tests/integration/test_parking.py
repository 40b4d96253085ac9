"""Known-bad rows never hold a sync hostage (SQLite and PostgreSQL, emulator over HTTP).

A table where a tenth of the rows can never be synced: every later run sends exactly the rows
that changed (counted in the emulator's own request log), succeeds when nothing new failed,
and still lists every bad row with its reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kizen_sync.engine import SyncRunner
from kizen_sync.errors import GuardError
from kizen_sync.models import RunOptions
from tests.integration.conftest import Env, people, person, project

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


def test_a_mapping_edit_is_not_stopped_by_the_rows_that_were_already_failing(env: Env) -> None:
    # 8 of 20 rows bad and parked. Editing the mapping plans them again (the mapping is part
    # of the fingerprint); failing the same way, they are no sign of a broken mapping: the
    # guard lets the run through, once, and the next run is quiet.
    bad = {f"r{i}": {"status": "Bogus"} for i in range(1, 9)}
    people(env.db, [person(i, **bad.get(f"r{i}", {})) for i in range(1, 21)])
    env.runner(max_reject_rate=1.0, failure_threshold=1.0).run("contacts")
    fields = env.runner().config.syncs[0].model_dump(mode="json")["fields"]
    fields[2]["format"] = "auto"
    edited = env.runner(fields=fields)
    assert edited.check_guards("contacts").passed
    report = edited.run("contacts")
    assert (report.status, report.counts.failed, report.counts.noop) == ("failed", 8, 12)
    env.emu.request_log.reset()
    quiet = edited.run("contacts")
    assert (quiet.status, quiet.parked, env.emu.request_log.total()) == ("success", 8, 0)
    # A mapping edit that breaks the 12 rows that were fine is still stopped before any write.
    fields[3]["match"] = "id"  # the status column holds labels, not option ids
    with pytest.raises(GuardError, match="cannot be mapped"):
        env.runner(fields=fields).run("contacts")


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


class RefuseArchives(httpx.AsyncBaseTransport):
    """Kizen refusing the DELETE of some records for good (409); every other request goes
    to the emulator over HTTP. ``refused`` counts the refusals (shared by the runners)."""

    def __init__(self, ids: set[str], refused: list[str]) -> None:
        self.ids, self.refused = ids, refused
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        record = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method == "DELETE" and record in self.ids:
            self.refused.append(record)
            return httpx.Response(409, json={"detail": "Record is locked.", "code": "conflict"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_failed_archive_is_parked_and_left_out_of_the_guard(env: Env) -> None:
    rows = [person(i) for i in range(1, 31)]
    people(env.db, rows)
    assert env.runner().run("contacts").counts.created == 30
    state = env.runner().store.load_state("contacts", ["1", "2"])
    locked = {str(state["1"].kizen_id), str(state["2"].kizen_id)}
    refused: list[str] = []

    def runner(max_archive_fraction: float = 0.1) -> SyncRunner:
        config = project(
            env.db, delete={"archive": True, "max_archive_fraction": max_archive_fraction}
        )
        return SyncRunner(
            config,
            client_settings=env.settings(),
            warehouse=env.db.warehouse,
            transport=RefuseArchives(locked, refused),
        )

    # Rows 1 and 2 leave the source; Kizen refuses both archives (409): new failures.
    people(env.db, rows[2:])
    first = runner().run("contacts")
    assert (first.status, first.counts.archived, first.counts.failed) == ("failed", 0, 2)
    assert sorted(refused) == sorted(locked)

    # Nothing changed since: the refused archives are parked, not sent again, not news.
    env.emu.request_log.reset()
    second = runner().run("contacts")
    assert (second.status, second.counts.failed, second.parked) == ("success", 0, 2)
    assert (second.planned, env.emu.request_log.total(), len(refused)) == (0, 0, 2)
    listing = env.runner().store.failures.listing("contacts")
    assert (listing.total, listing.parked) == (2, 2)
    assert {r["kizen_id"] for r in listing.rows} == locked
    [group] = listing.groups
    assert group.reason == (
        "ConflictError: 409 Record is locked. (DELETE /api/records/client_client/<id>)"
    )

    # One more row leaves: 1 of 30 is within a 5 % guard, though 3 of 30 would not be.
    people(env.db, rows[3:])
    third = runner(max_archive_fraction=0.05).run("contacts")
    assert (third.status, third.counts.archived, third.parked) == ("success", 1, 2)
    assert env.writes() == 1

    # A retry sends the parked archives again; refused again, they are known, not news.
    retried = runner().retry("contacts")
    assert (retried.status, retried.counts.failed, retried.known_failed) == ("success", 2, 2)
    assert len(refused) == 4

    # Kizen lets them go: the next retry archives both, and nothing is left open.
    locked.clear()
    done = runner().retry("contacts")
    assert (done.status, done.counts.archived) == ("success", 2)
    assert env.runner().store.failures.listing("contacts").total == 0
    assert not {"p1@example.com", "p2@example.com", "p3@example.com"} & set(env.contacts())
