"""Materializing the syncs in-process against the emulator and a SQLite demo warehouse."""

from __future__ import annotations

from dagster_world import Project, checks, materializations, metadata_values


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


def test_backfill_resyncs_exactly_the_rows_of_two_partitions(project: Project) -> None:
    defs = project.definitions()

    for day in ("2024-03-01", "2024-03-02"):
        result = project.materialize(defs, "kizen/contacts_backfill", partition_key=day)
        assert result.success
        applied = metadata_values(materializations(result, "kizen/contacts_backfill")[0])
        assert applied["partition"] == day

    tagged = {(row["partition_key"], row["source_key"]) for row in project.audit_rows()}
    assert tagged == {
        ("2024-03-01", "1"),
        ("2024-03-01", "2"),
        ("2024-03-01", "3"),
        ("2024-03-02", "4"),
        ("2024-03-02", "5"),
    }
    assert len(project.emulator.records("client_client")) == 5


def test_mass_archive_guard_blocks_before_any_delete(project: Project) -> None:
    defs = project.definitions()
    assert project.run_job(defs, "contacts_sync").success
    project.sql("DELETE FROM crm_contacts WHERE contact_id > 5")

    blocked = project.run_job(defs, "contacts_sync")

    assert not blocked.success
    guard = checks(blocked)["contacts_mass_archive_guard"]
    assert not guard.passed
    numbers = {k: v.value for k, v in guard.metadata.items()}
    assert numbers["would_archive"] == 20
    assert numbers["synced"] == 25
    assert numbers["max_archive_fraction"] == 0.1
    assert materializations(blocked, "kizen/contacts") == []
    skipped = blocked.filter_events(lambda e: e.step_key == "kizen__contacts")
    assert not any(e.is_step_start for e in skipped)

    # Materializing the records asset alone (no plan) is stopped by the runner's own guard.
    direct = project.materialize(defs, "kizen/contacts")

    assert not direct.success
    failure = direct.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert "would archive 20 of 25" in (failure.description or "")
    assert project.emulator.request_log.total(method="DELETE") == 0
    assert len(project.emulator.records("client_client")) == 25
