"""Materializing the syncs in-process against the emulator and a SQLite demo warehouse."""

from __future__ import annotations

import json
import threading
import time

import dagster as dg
import yaml
from dagster_world import Project, checks, materializations, metadata_values, observations
from sqlalchemy import create_engine, inspect

from dagster_project.build import build_definitions
from kizen_sync.warehouse import StateStore, Warehouse
from kizen_sync.warehouse.lease import Leases


def test_scheduled_sync_creates_then_sends_nothing(project: Project) -> None:
    defs = project.definitions()

    first = project.run_job(defs, "contacts_sync")

    assert first.success
    plan = metadata_values(materializations(first, "kizen/contacts_plan")[0])
    assert plan["would_create"] == 25
    assert plan["would_archive"] == 0
    # The plan sample reads like the CLI's plan: field by field, option labels, not ids.
    changes = [r.data["changes"] for r in plan["plan_sample"].records]
    assert len(changes) == 25
    assert any("email_status: ∅ → Opted In" in c for c in changes), changes[:3]
    applied = metadata_values(materializations(first, "kizen/contacts")[0])
    assert applied["created"] == 25
    assert applied["failed"] == 0
    assert applied["dagster/row_count"] == 25
    assert applied["audit_run_id"] == first.run_id
    assert "**contacts**" in applied["summary"]
    assert applied["open_failures"].records == []
    evaluations = checks(first)
    assert evaluations["contacts_mass_archive_guard"].passed
    assert evaluations["contacts_reject_rate_guard"].passed
    assert evaluations["contacts_failure_rate"].passed
    assert evaluations["contacts_failures_left_open"].passed
    assert len(project.emulator.records("client_client")) == 25

    writes = project.writes()
    second = project.run_job(defs, "contacts_sync")

    assert second.success
    again = metadata_values(materializations(second, "kizen/contacts")[0])
    assert again["created"] == again["updated"] == 0
    assert again["unchanged"] == 25
    assert project.writes() == writes


def test_partitions_are_the_windows_that_hold_rows(project: Project) -> None:
    defs = project.definitions()
    assert project.instance.get_dynamic_partitions("contacts_daily") == []

    planned = project.materialize(defs, "kizen/contacts_plan")

    assert planned.success
    # The demo rows were last updated on 12 days in March 2024: those, and only those.
    days = project.instance.get_dynamic_partitions("contacts_daily")
    assert days == [f"2024-03-{d:02d}" for d in range(1, 13)]
    plan = metadata_values(materializations(planned, "kizen/contacts_plan")[0])
    assert plan["partitions_with_rows"] == 12
    assert plan["partitions_span"] == "2024-03-01 ... 2024-03-12"

    # A run that moves rows to a new day adds that day; nothing is ever queried at load time.
    project.sql("UPDATE crm_contacts SET updated_at = '2024-04-02 08:00:00' WHERE contact_id = 1")
    assert project.run_job(defs, "contacts_sync").success
    assert project.instance.get_dynamic_partitions("contacts_daily")[-1] == "2024-04-02"


def test_backfill_resyncs_exactly_the_rows_of_two_partitions(project: Project) -> None:
    defs = project.definitions()
    assert project.materialize(defs, "kizen/contacts_plan").success  # records the partitions

    for day, rows in (("2024-03-01", 3), ("2024-03-02", 2)):
        result = project.materialize(defs, "kizen/contacts_backfill", partition_key=day)
        assert result.success
        applied = metadata_values(materializations(result, "kizen/contacts_backfill")[0])
        assert applied["partition"] == day
        assert applied["partition_rows"] == rows
        assert applied["created"] == rows

    tagged = {(row["partition_key"], row["source_key"]) for row in project.audit_rows()}
    assert tagged == {
        ("2024-03-01", "1"),
        ("2024-03-01", "2"),
        ("2024-03-01", "3"),
        ("2024-03-02", "4"),
        ("2024-03-02", "5"),
    }
    assert len(project.emulator.records("client_client")) == 5


def test_a_backfill_sends_only_what_differs_and_its_counts_add_up(project: Project) -> None:
    defs = project.definitions()
    assert project.run_job(defs, "contacts_sync").success  # 25 created, partitions recorded
    # Fixed in place, the cursor untouched: only a backfill of its day would look at it again.
    project.sql("UPDATE crm_contacts SET first_name = 'Grace B.' WHERE contact_id = 2")
    writes = project.writes()

    result = project.materialize(defs, "kizen/contacts_backfill", partition_key="2024-03-01")

    assert result.success
    values = metadata_values(materializations(result, "kizen/contacts_backfill")[0])
    counts = {
        k: values[k] for k in ("created", "updated", "archived", "unchanged", "noop", "failed")
    }
    assert counts == {
        "created": 0,
        "updated": 1,
        "archived": 0,
        "unchanged": 2,
        "noop": 0,
        "failed": 0,
    }
    assert sum(counts.values()) == values["partition_rows"] == 3
    assert "1 of 1 planned records written" in values["summary"]
    # One PATCH, carrying only the field that differs; Kizen holds the new name.
    assert project.writes() == writes + 1
    [audited] = [r for r in project.audit_rows() if r["run_id"] == result.run_id]
    assert (audited["source_key"], set(json.loads(audited["changed_fields"]))) == (
        "2",
        {"first_name"},
    )
    assert project.first_names()["grace.hopper@example.com"] == "Grace B."

    # Again: everything in the partition is what Kizen confirmed, nothing is sent.
    again = project.materialize(defs, "kizen/contacts_backfill", partition_key="2024-03-01")
    values = metadata_values(materializations(again, "kizen/contacts_backfill")[0])
    assert (values["unchanged"], values["updated"], values["partition_rows"]) == (3, 0, 3)
    assert project.writes() == writes + 1


def test_a_backfill_counts_its_parked_rows_so_they_add_up(project: Project) -> None:
    # One bad e-mail of 25 rows, tolerated by the threshold: the record fails, then is parked.
    defs = project.definitions(failure_threshold=0.5)
    project.sql("UPDATE crm_contacts SET email = 'grace(at)example' WHERE contact_id = 2")
    assert project.run_job(defs, "contacts_sync").success
    writes = project.writes()

    result = project.materialize(defs, "kizen/contacts_backfill", partition_key="2024-03-01")

    assert result.success
    values = metadata_values(materializations(result, "kizen/contacts_backfill")[0])
    names = ("created", "updated", "archived", "unchanged", "noop", "failed", "parked")
    counts = {k: values[k] for k in names}
    assert counts == {
        "created": 0,
        "updated": 0,
        "archived": 0,
        "unchanged": 2,
        "noop": 0,
        "failed": 0,
        "parked": 1,
    }
    assert sum(counts.values()) == values["partition_rows"] == 3
    # The summary's table has the parked column too, and claims no write.
    header = "| created | updated | archived | unchanged | noop | failed | parked |"
    assert header in values["summary"]
    assert "| 0 | 0 | 0 | 2 | 0 | 0 | 1 |" in values["summary"]
    assert "0 of 0 planned records written" in values["summary"]
    assert project.writes() == writes


def test_a_partition_that_lost_its_rows_says_it_is_empty(project: Project) -> None:
    defs = project.definitions()
    assert project.run_job(defs, "contacts_sync").success
    project.sql("UPDATE crm_contacts SET updated_at = '2024-03-05 12:00:00' WHERE contact_id = 4")
    project.sql("UPDATE crm_contacts SET updated_at = '2024-03-05 12:00:00' WHERE contact_id = 5")

    result = project.materialize(defs, "kizen/contacts_backfill", partition_key="2024-03-02")

    assert result.success
    applied = metadata_values(materializations(result, "kizen/contacts_backfill")[0])
    assert applied["partition_rows"] == 0
    assert "holds no rows" in applied["empty"]


def test_mass_archive_guard_stops_before_any_delete(project: Project) -> None:
    defs = project.definitions()
    assert project.run_job(defs, "contacts_sync").success
    project.sql("DELETE FROM crm_contacts WHERE contact_id > 5")

    blocked = project.run_job(defs, "contacts_sync")

    assert not blocked.success
    evaluations = checks(blocked)
    guard = evaluations["contacts_mass_archive_guard"]
    assert not guard.passed
    assert guard.severity == dg.AssetCheckSeverity.ERROR
    numbers = {k: v.value for k, v in guard.metadata.items()}
    assert numbers["would_archive"] == 20
    assert numbers["synced"] == 25
    assert numbers["max_archive_fraction"] == 0.1
    # The records step ran, stopped before its first write, and evaluated its own checks:
    # none is left "execution failed" in the UI.
    assert materializations(blocked, "kizen/contacts") == []
    rate = evaluations["contacts_failure_rate"]
    assert rate.passed
    assert "No record was sent" in (rate.description or "")
    assert evaluations["contacts_failures_left_open"].passed
    [observed] = observations(blocked, "kizen/contacts")
    values = metadata_values(observed)
    assert values["run_outcome"] == "stopped"
    assert (values["would_archive"], values["synced"]) == (20, 25)
    failure = blocked.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert "would archive 20 of 25" in (failure.description or "")
    assert project.emulator.request_log.total(method="DELETE") == 0
    assert len(project.emulator.records("client_client")) == 25


def test_a_separate_state_database_works_in_dagster_as_in_the_cli(project: Project) -> None:
    """``warehouse.state``: the resource builds the same two-database warehouse as the CLI."""
    state_db = project.workdir / "state.db"
    path = project.sync_file()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["warehouse"]["state"] = {"url": f"sqlite:///{state_db}"}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    defs = build_definitions(path)

    first = project.run_job(defs, "contacts_sync")

    assert first.success
    assert len(project.emulator.records("client_client")) == 25
    engines = {
        name: create_engine(url)
        for name, url in (("state", f"sqlite:///{state_db}"), ("source", project.warehouse_url))
    }
    try:
        tables = {name: set(inspect(e).get_table_names()) for name, e in engines.items()}
    finally:
        for engine in engines.values():
            engine.dispose()
    assert "kizen_sync_sync_state" in tables["state"]
    assert "kizen_sync_sync_state" not in tables["source"]
    writes = project.writes()
    second = project.run_job(defs, "contacts_sync")
    assert second.success
    assert metadata_values(materializations(second, "kizen/contacts")[0])["unchanged"] == 25
    assert project.writes() == writes


def test_a_sync_held_by_another_run_is_retried_not_failed(project: Project) -> None:
    """A CLI run (or a lost worker's lease) holds the sync: the step waits its turn as a retry.

    Nothing is sent while the other run holds the lease; once it is released, the retried step
    syncs everything and the run succeeds.
    """
    path = project.sync_file()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["warehouse"]["lease"] = {"ttl_s": 2}  # retries every ttl_s / 2 = 1 s
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    defs = build_definitions(path)
    warehouse = Warehouse(project.warehouse_url)
    store = StateStore(warehouse)
    store.ensure_schema()
    lease = Leases(warehouse, store.tables).acquire("contacts", "a-cli-run", ttl_s=600)
    results: list[dg.ExecuteInProcessResult] = []
    runner = threading.Thread(target=lambda: results.append(project.run_job(defs, "contacts_sync")))
    runner.start()
    try:
        deadline = time.monotonic() + 600  # a hang guard, not a timing assertion
        while not _retries(project.instance):
            assert runner.is_alive(), "the run ended without waiting for the lease"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert project.writes() == 0
    finally:
        lease.release()
        runner.join(timeout=600)
        warehouse.dispose()
    (result,) = results
    assert result.success
    assert len(project.emulator.records("client_client")) == 25


def _retries(instance: dg.DagsterInstance) -> int:
    runs = instance.get_runs()
    if not runs:
        return 0
    events = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    return len(events)
