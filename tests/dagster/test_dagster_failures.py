"""Failed records: checks, the retry job, and the run-failure sensor."""

from __future__ import annotations

import dagster as dg
from dagster_world import Project, checks, materializations, metadata_values

BREAK_ROW_7 = "UPDATE crm_contacts SET email = 'dennis.r(at)example' WHERE contact_id = 7"


def test_failed_record_is_shown_flagged_when_stuck_and_retried_alone(project: Project) -> None:
    project.sql(BREAK_ROW_7)
    defs = project.definitions(failure_threshold=1.0)

    first = project.run_job(defs, "contacts_sync")

    assert first.success
    applied = metadata_values(materializations(first, "kizen/contacts")[0])
    assert (applied["created"], applied["failed"]) == (24, 1)
    assert [r.data["source_key"] for r in applied["failures_sample"].records] == ["7"]
    assert "MappingError" in applied["failures_sample"].records[0].data["error"]
    [open_row] = applied["open_failures"].records
    assert open_row.data["sync"] == "contacts"
    assert open_row.data["failed_runs"] == 1
    rate = checks(first)["contacts_failure_rate"]
    assert not rate.passed
    assert rate.severity == dg.AssetCheckSeverity.WARN
    assert checks(first)["contacts_failures_left_open"].passed

    # Row 7 did not change: the next scheduled run leaves it parked (sends nothing) and says
    # so as a WARN.
    before = project.writes()
    second = project.run_job(defs, "contacts_sync")
    assert second.success
    assert project.writes() == before
    parked = checks(second)["contacts_failure_rate"]
    assert (parked.passed, parked.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert (parked.metadata["parked"].value, parked.metadata["new_failures"].value) == (1, 0)
    assert "1 parked failure, unchanged since" in (parked.description or "")
    # Retried by hand again and again, it stays failed: a person must look at it.
    assert project.run_job(defs, "contacts_retry_failed").success
    third = project.run_job(defs, "contacts_retry_failed")

    assert third.success
    stuck = checks(third)["contacts_failures_left_open"]
    assert not stuck.passed
    assert stuck.severity == dg.AssetCheckSeverity.WARN
    assert stuck.metadata["left_open"].value == 1

    # Fix the row, and change another one: the retry sends only the failed record.
    project.sql("UPDATE crm_contacts SET email = 'dennis.r@example.com' WHERE contact_id = 7")
    project.sql("UPDATE crm_contacts SET first_name = 'Augusta' WHERE contact_id = 1")
    writes = project.writes()

    retried = project.run_job(defs, "contacts_retry_failed")

    assert retried.success
    applied = metadata_values(materializations(retried, "kizen/contacts")[0])
    assert (applied["created"], applied["updated"], applied["failed"]) == (1, 0, 0)
    assert project.writes() == writes + 1
    names = {
        fields["email"]: fields["first_name"]
        for fields in (
            {f["name"]: f["value"] for f in record["fields"].values()}
            for record in project.emulator.records("client_client")
        )
    }
    assert names["ada.lovelace@example.com"] == "Ada"
    assert "dennis.r@example.com" in names
    assert checks(retried)["contacts_failures_left_open"].passed


def test_failure_sensor_reports_the_sync_and_its_counts(project: Project) -> None:
    project.sql(BREAK_ROW_7)
    defs = project.definitions()  # failure_threshold 0: one failed record fails the run

    result = project.run_job(defs, "contacts_sync")

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert failure.metadata["failed"].value == 1
    assert "failure_threshold" in (failure.description or "")
    context = dg.build_run_status_sensor_context(
        sensor_name="kizen_sync_run_failures",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=project.instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sensor = defs.resolve_sensor_def("kizen_sync_run_failures")

    reported = sensor(context)

    assert isinstance(reported, dg.SensorResult)
    [observation] = reported.asset_events
    assert observation.asset_key == dg.AssetKey(["kizen", "contacts"])
    values = {k: getattr(v, "value", v) for k, v in observation.metadata.items()}
    assert values["sync"] == "contacts"
    assert values["failed_run_id"] == result.run_id
    assert (values["created"], values["failed"]) == (24, 1)


def test_run_config_include_parked_sends_parked_rows_again_without_failing(
    project: Project,
) -> None:
    project.sql(BREAK_ROW_7)
    defs = project.definitions()  # failure_threshold 0: a new failure fails the run
    assert not project.run_job(defs, "contacts_sync").success  # row 7 fails, and is parked
    quiet = project.run_job(defs, "contacts_sync")
    assert quiet.success
    assert metadata_values(materializations(quiet, "kizen/contacts")[0])["failed"] == 0

    again = defs.resolve_job_def("contacts_sync").execute_in_process(
        instance=project.instance,
        raise_on_error=False,
        run_config={"ops": {"kizen__contacts": {"config": {"include_parked": True}}}},
    )

    assert again.success  # row 7 failed again exactly as before: known, not news
    applied = metadata_values(materializations(again, "kizen/contacts")[0])
    assert applied["failed"] == 1
    rate = checks(again)["contacts_failure_rate"]
    assert (rate.severity, rate.metadata["new_failures"].value) == (dg.AssetCheckSeverity.WARN, 0)
