"""SyncRunner end to end: a warehouse (SQLite, PostgreSQL, DuckDB; Snowflake on fakesnow) and
the emulator over real HTTP.

Every assertion is about something a user would notice: what Kizen holds afterwards, what
was (not) sent according to the emulator's own request log, what the run report says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from kizen_sync.client import KizenClient
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import ConfigError, GuardError
from kizen_sync.models import RunOptions
from kizen_sync.render import plan_table
from kizen_sync.schema import ObjectSchema
from tests.integration.conftest import CONTACTS, Env, people, person, project


@pytest.fixture
def env(any_db: Any) -> Iterator[Env]:
    """The suite's warehouses and Snowflake against fakesnow (``any_db``)."""
    emu = Emulator.demo()
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        yield Env(any_db, emu, base_url)


def test_run_creates_updates_adds_and_removes_tags_and_archives(env: Env):
    people(env.db, [person(i) for i in range(1, 11)])
    runner = env.runner(delete={"max_archive_fraction": 0.2})
    report = runner.run("contacts")
    assert (report.status, report.counts.created, report.counts.failed) == ("success", 10, 0)
    kizen = env.contacts()
    assert len(kizen) == 10
    assert kizen["p1@example.com"] == {
        "first_name": "Person1",
        "tags": ["Newsletter", "VIP"],
        "email_status": "Opted In",
    }

    # Nothing changed: the second run sends nothing at all, not even the schema read.
    env.emu.request_log.reset()
    report = runner.run("contacts")
    assert env.emu.request_log.total() == 0
    assert (report.requests, report.counts.unchanged, report.planned) == (0, 10, 0)
    assert runner.plan("contacts").requests == 0

    rows = [person(i) for i in range(2, 11)]  # row 1 deleted
    rows[0] = person(2, first="Renamed")
    rows[1] = person(3, tags="VIP,Partner")  # Newsletter removed, Partner added
    people(env.db, rows)
    report = runner.run("contacts")
    assert (report.counts.updated, report.counts.archived, report.counts.unchanged) == (2, 1, 7)
    kizen = env.contacts()
    assert "p1@example.com" not in kizen
    assert kizen["p2@example.com"]["first_name"] == "Renamed"
    assert kizen["p3@example.com"]["tags"] == ["Partner", "VIP"]


def test_mass_archive_guard_stops_before_any_request(env: Env):
    people(env.db, [person(i) for i in range(1, 11)])
    runner = env.runner()
    runner.run("contacts")
    people(env.db, [person(i) for i in range(1, 3)])  # a half-loaded source
    env.emu.request_log.reset()
    guard = runner.check_guards("contacts")
    assert (guard.passed, guard.would_archive, guard.synced) == (False, 8, 10)
    with pytest.raises(GuardError) as caught:
        runner.run("contacts")
    assert str(caught.value).startswith(
        "sync contacts would archive 8 of 10 synced records (80%), more than the 5% allowed "
        "by delete.max_archive_fraction; nothing was sent."
    )
    assert env.writes() == 0
    assert len(env.contacts()) == 10
    # The stopped run is in the runs table, as monitors and run_summary read it.
    (stopped, *_) = runner.store.run_summaries("contacts")
    assert stopped["status"] == "failed"
    assert stopped["message"].startswith("stopped: sync contacts would archive 8 of 10")
    assert (stopped["updated"], stopped["archived"], stopped["audit_records"]) == (0, 0, 0)


def test_reject_rate_guard_stops_a_mostly_broken_mapping(env: Env):
    rows = [person(i, status="No Such Status") for i in range(1, 8)] + [person(8), person(9)]
    people(env.db, rows)
    runner = env.runner()
    guard = runner.check_guards("contacts")
    assert (guard.passed, guard.reject_count, guard.planned) == (False, 7, 9)
    env.emu.request_log.reset()
    with pytest.raises(GuardError, match="7 of 9 planned records"):
        runner.run("contacts")
    assert env.writes() == 0
    (stopped,) = runner.store.run_summaries("contacts")
    assert (stopped["status"], stopped["planned"]) == ("failed", 9)
    assert stopped["message"].startswith("stopped: sync contacts: 7 of 9 planned records")


def test_records_missing_in_kizen_are_parked_until_retried(env: Env):
    # Update mode: rows are matched by e-mail; records missing in Kizen fail (404, not worth
    # re-sending as they are), nothing is created.
    people(env.db, [person(i) for i in range(1, 6)])
    runner = env.runner(mode="update")
    report = runner.run("contacts")
    assert (report.status, report.counts.failed) == ("failed", 5)
    failures = runner.open_failures("contacts")
    assert {f["source_key"] for f in failures} == {"1", "2", "3", "4", "5"}
    assert failures[0]["error_message"].startswith("no Kizen record with email 'p")
    assert env.contacts() == {}
    for i in range(1, 6):  # someone creates the records in Kizen
        env.emu.create_record(CONTACTS, {"email": f"p{i}@example.com", "first_name": "Old"})
    # The rows did not change: the next run leaves the parked failures alone, and succeeds.
    env.emu.request_log.reset()
    report = runner.run("contacts")
    assert (report.status, report.planned, report.parked, env.emu.request_log.total()) == (
        "success",
        0,
        5,
        0,
    )
    assert report.parked_since is not None
    # Asked to, a retry sends them again.
    report = runner.retry("contacts")
    assert (report.status, report.counts.updated, report.counts.failed) == ("success", 5, 0)
    assert runner.open_failures("contacts") == []
    assert {c["first_name"] for c in env.contacts().values()} == {f"Person{i}" for i in range(1, 6)}


def test_retry_resends_only_open_failures(env: Env):
    people(env.db, [person(1), person(2, status="Bogus"), person(3)])
    runner = env.runner()
    report = runner.run("contacts")
    assert (report.counts.created, report.counts.failed) == (2, 1)
    failure = runner.open_failures("contacts")[0]
    assert failure["source_key"] == "2"
    assert "email_status" in failure["error_message"]
    # Fix the failed row, and also change a healthy one: retry must only send the former.
    people(env.db, [person(1, first="Changed"), person(2), person(3)])
    report = runner.retry("contacts")
    assert (report.counts.created, report.counts.updated, report.planned) == (1, 0, 1)
    assert runner.open_failures("contacts") == []
    assert env.contacts()["p1@example.com"]["first_name"] == "Person1"
    assert runner.plan("contacts").counts.updated == 1


def test_a_failure_fixed_without_a_change_left_to_send_is_closed(env: Env):
    # Row 2 synced fine, then got a bad value; row 3 never synced (bad value from the start).
    people(env.db, [person(1), person(2), person(3, status="Bogus")])
    runner = env.runner(delete={"max_archive_fraction": 1.0})
    assert runner.run("contacts").counts.failed == 1
    people(env.db, [person(1), person(2, status="Bogus"), person(3, status="Bogus")])
    report = runner.run("contacts")  # row 3 is parked (unchanged since it failed): not re-sent
    assert (report.counts.failed, report.parked) == (1, 1)
    assert {f["source_key"] for f in runner.open_failures("contacts")} == {"2", "3"}

    # Row 2 is put back as it was (nothing to send), row 3 is dropped before it was ever synced.
    people(env.db, [person(1), person(2)])
    env.emu.request_log.reset()
    report = runner.run("contacts")
    assert (report.status, report.planned, env.writes()) == ("success", 0, 0)
    assert runner.open_failures("contacts") == []
    resolved = [r for r in runner.store.audit_rows(report.run_id) if r["operation"] == "resolve"]
    assert {(r["source_key"], r["outcome"]) for r in resolved} == {
        ("2", "success"),
        ("3", "success"),
    }
    kizen_ids = {r["source_key"]: r["kizen_id"] for r in resolved}
    assert kizen_ids["2"] is not None  # the record it was synced to
    assert kizen_ids["3"] is None  # never created
    assert runner.store.failures.summary("contacts").count == 0  # nothing left parked


def test_editing_the_mapping_resends_what_it_changes_without_any_row_change(env: Env):
    people(env.db, [person(i) for i in range(1, 4)])
    fields = project(env.db).syncs[0].model_dump(mode="json")["fields"]
    assert env.runner().run("contacts").counts.created == 3

    # A description edit is not a mapping change: nothing to plan, nothing sent.
    env.emu.request_log.reset()
    report = env.runner(description="now documented").run("contacts")
    assert (report.planned, env.emu.request_log.total()) == (0, 0)

    # The same column now also feeds last_name: every record gets it, and only it.
    report = env.runner(fields=[*fields, {"column": "first_name", "field": "last_name"}]).run(
        "contacts"
    )
    assert (report.counts.updated, report.counts.unchanged) == (3, 0)
    assert env.emu.request_log.total(method="PATCH") == 3
    assert {c["changed_fields"] for c in env.runner().store.audit_rows(report.run_id)} == {
        '{"last_name": "Person1"}',
        '{"last_name": "Person2"}',
        '{"last_name": "Person3"}',
    }


def test_max_records_caps_writes_and_the_rest_wait(env: Env):
    people(env.db, [person(i) for i in range(1, 11)])
    runner = env.runner()
    first = runner.run("contacts", RunOptions(max_records=4))
    assert (first.counts.created, first.planned) == (4, 4)
    second = runner.run("contacts")
    assert second.counts.created == 6
    assert len(env.contacts()) == 10


def test_dry_run_changes_nothing(env: Env):
    people(env.db, [person(i) for i in range(1, 6)])
    runner = env.runner()
    plan = runner.plan("contacts")
    assert (plan.status, plan.counts.created, len(plan.plan_sample)) == ("dry_run", 5, 5)
    fields = {c.field for c in plan.plan_sample[0].changes}
    assert {"email", "first_name", "tags", "email_status"} <= fields
    assert runner.run("contacts", RunOptions(dry_run=True)).status == "dry_run"
    assert env.writes() == 0
    assert runner.run_summaries("contacts") == []
    assert runner.store.audit_rows(sync="contacts") == []
    assert runner.run("contacts").counts.created == 5


def test_missing_api_key_names_the_variable(db: Any):
    people(db, [person(1)])
    runner = SyncRunner(project(db), warehouse=db.warehouse)
    with pytest.raises(ConfigError, match="KIZEN_SYNC_TEST_NO_SUCH_VAR"):
        runner.run("contacts")


# --- contracts between planner, runner, store and display ---------------------------------------


def contact_field_ids(env: Env) -> dict[str, str]:
    """Field API name -> field UUID of the emulator's contacts."""

    async def read() -> ObjectSchema:
        async with KizenClient(env.settings()) as client:
            return await client.get_object_schema(CONTACTS)

    return {f.name: f.id for f in asyncio.run(read()).fields}


def test_a_deleted_row_that_is_not_archived_is_forgotten_once_and_for_all(env: Env) -> None:
    people(env.db, [person(i) for i in range(1, 6)])
    runner = env.runner(delete={"archive": False})
    assert runner.run("contacts").counts.created == 5
    people(env.db, [person(i) for i in range(1, 5)])  # row 5 deleted
    env.emu.request_log.reset()
    forgot = runner.run("contacts")
    assert (forgot.counts.noop, forgot.counts.archived, forgot.counts.unchanged) == (1, 0, 4)
    assert env.writes() == 0
    assert "p5@example.com" in env.contacts()  # left alone in Kizen

    # Settled: the next plan and run see nothing for it.
    plan = runner.plan("contacts")
    assert (plan.planned, plan.counts.noop, plan.counts.unchanged) == (0, 0, 4)
    report = runner.run("contacts")
    assert (report.planned, report.counts.noop, report.counts.unchanged) == (0, 0, 4)
    assert [r for r in runner.store.audit_rows(report.run_id) if r["source_key"] == "5"] == []
    assert runner.store.load_state("contacts", ["5"]) == {}
    (forget,) = [r for r in runner.store.audit_rows(forgot.run_id) if r["source_key"] == "5"]
    assert (forget["operation"], forget["outcome"]) == ("forget", "success")

    # The row comes back: it is new again and finds its record by e-mail.
    people(env.db, [person(i) for i in range(1, 6)])
    report = runner.run("contacts")
    assert (report.counts.created + report.counts.updated, report.counts.failed) == (1, 0)
    assert runner.store.load_state("contacts", ["5"])["5"].kizen_id is not None


def test_values_of_a_sensitive_field_mapped_by_uuid_never_reach_the_audit(env: Env) -> None:
    ids = contact_field_ids(env)
    fields = [
        {"column": "email", "field": "email"},
        {"column": "first_name", "field": ids["first_name"], "sensitive": True},
        {"column": "tags", "field": "tags", "format": "delimited"},
        {"column": "status", "field": ids["email_status"], "sensitive": True},
    ]
    secrets = ["SecretAlpha", "SecretBeta", "SecretGamma", "Secret-Bogus-Status"]
    people(
        env.db,
        [person(1, first="SecretAlpha"), person(2, first="SecretBeta", status=secrets[3])],
    )
    runner = env.runner(fields=fields)
    first = runner.run("contacts")
    assert (first.counts.created, first.counts.failed) == (1, 1)
    people(env.db, [person(1, first="SecretGamma", status="Not Opted In"), person(2)])
    second = runner.run("contacts")
    assert (second.counts.updated, second.counts.created, second.counts.failed) == (1, 1, 0)
    assert env.contacts()["p1@example.com"]["first_name"] == "SecretGamma"

    rows = runner.store.audit_rows(sync="contacts")
    dumped = json.dumps(rows, default=str) + json.dumps(
        [first.failures, second.failures, runner.run_summaries("contacts")], default=str
    )
    for secret in secrets:
        assert secret not in dumped, secret
    changed = [json.loads(r["changed_fields"]) for r in rows if r["outcome"] == "success"]
    assert changed
    assert all(c["first_name"] == "[redacted]" for c in changed)
    (failed,) = [r for r in rows if r["outcome"] == "failed"]
    assert json.loads(failed["field_errors"]) == {
        "email_status": ["value rejected (details withheld: sensitive field)"]
    }


def test_plan_shows_option_and_tag_labels_not_ids(env: Env) -> None:
    people(env.db, [person(i) for i in range(1, 4)])
    runner = env.runner()
    runner.run("contacts")
    people(env.db, [person(1), person(2), person(3, tags="VIP,Partner", status="Not Opted In")])
    report = runner.plan("contacts")
    (op,) = report.plan_sample
    assert report.labels["email_status"][op.new_values["email_status"]] == "Not Opted In"
    console = Console(record=True, width=200)
    console.print(plan_table("contacts", report.plan_sample, report.labels))
    shown = console.export_text()
    assert "Opted In → Not Opted In" in shown
    assert "+Partner \N{MINUS SIGN}Newsletter" in shown
    assert op.new_values["email_status"] not in shown  # no option id
    # The plan itself keeps the ids Kizen is sent.
    assert op.new_values["email_status"] != "Not Opted In"
