"""Failed records: checks, the retry job, and the run-failure sensor."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import dagster as dg
import pytest
from dagster_world import Project, checks, materializations, metadata_values, observations

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
    # Read in the UI, away from any command line: the commands name the sync file.
    sync_file = project.workdir / "syncs.yaml"
    assert f"`kizen-sync retry --config {sync_file} --sync contacts`" in (parked.description or "")
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
    names = project.first_names()
    assert names["ada.lovelace@example.com"] == "Ada"
    assert "dennis.r@example.com" in names
    assert checks(retried)["contacts_failures_left_open"].passed


def test_a_failed_run_leaves_its_failures_on_the_asset(project: Project) -> None:
    project.sql(BREAK_ROW_7)
    defs = project.definitions()  # failure_threshold 0: one failed record fails the run

    result = project.run_job(defs, "contacts_sync")

    assert not result.success
    # Nothing materialized (the run failed) but the asset's event history has the outcome.
    assert materializations(result, "kizen/contacts") == []
    [observed] = observations(result, "kizen/contacts")
    values = metadata_values(observed)
    assert values["run_outcome"] == "failed"
    assert (values["created"], values["failed"], values["dagster/row_count"]) == (24, 1, 24)
    [group] = values["failure_reasons"].records
    assert group.data["reason"].startswith("MappingError · email: ")
    assert (group.data["records"], group.data["source_keys"]) == (1, "7")
    assert "dennis.r(at)example" in group.data["example"]
    [row] = values["open_failures"].records
    assert (row.data["source_key"], row.data["reason"]) == ("7", group.data["reason"])
    assert f"kizen-sync retry --config {project.workdir / 'syncs.yaml'}" in values["retry"]
    assert "contacts_retry_failed" in values["retry"]
    assert "24 of 25 planned records written" in values["summary"]
    rate = checks(result)["contacts_failure_rate"]
    assert not rate.passed
    assert rate.severity == dg.AssetCheckSeverity.ERROR
    assert rate.metadata["failure_reasons"].value.records[0].data["source_keys"] == "7"
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert failure.metadata["failed"].value == 1
    assert "failure_threshold" in (failure.description or "")
    assert "Top reasons:\n1 x MappingError · email" in (failure.description or "")


def run_failure_sensor(
    project: Project, defs: dg.Definitions, result: dg.ExecuteInProcessResult
) -> None:
    """Evaluate the run-failure sensor on ``result``'s failure, as the daemon would."""
    context = dg.build_run_status_sensor_context(
        sensor_name="kizen_sync_run_failures",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=project.instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    defs.resolve_sensor_def("kizen_sync_run_failures")(context)


@pytest.fixture
def webhook() -> Iterator[list[dict[str, Any]]]:
    """A webhook receiver on loopback: the JSON bodies it was sent."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_port}/hook"  # type: ignore[attr-defined]
    yield server  # type: ignore[misc]
    server.shutdown()
    server.server_close()


def test_failure_sensor_says_which_sync_how_many_and_why(
    project: Project, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.sql(BREAK_ROW_7)
    defs = project.definitions()
    result = project.run_job(defs, "contacts_sync")
    assert not result.success
    monkeypatch.setenv("KIZEN_SYNC_ALERT_WEBHOOK", webhook.url)

    run_failure_sensor(project, defs, result)

    [alert] = webhook.received
    text = alert["text"]
    assert f"sync `contacts` failed (run {result.run_id[:8]})" in text
    assert "1 of 25 records failed (created 24, updated 0, archived 0, unchanged 0, noop 0)" in text
    assert "failure_threshold" in text
    assert "1 x MappingError · email" in text
    assert "source keys 7" in text
    assert webhook.url not in text


def test_failure_sensor_explains_a_guard_stop(
    project: Project, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = project.definitions()
    assert project.run_job(defs, "contacts_sync").success
    project.sql("DELETE FROM crm_contacts WHERE contact_id > 5")
    result = project.run_job(defs, "contacts_sync")
    monkeypatch.setenv("KIZEN_SYNC_ALERT_WEBHOOK", webhook.url)

    run_failure_sensor(project, defs, result)

    [alert] = webhook.received
    assert "Stopped by the mass-archive guard: 20 of 25 would be archived." in alert["text"]
    assert "DagsterAssetCheckFailedError" not in alert["text"]


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


def test_open_failure_counts_groups_and_stuck_records_are_true_totals(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record table shows the newest few; the counts, the groups and the stuck check
    # must still cover every open failure (a table of 2,000 rows with 200 bad ones).
    monkeypatch.setattr("dagster_project.metadata.OPEN_FAILURES_SHOWN", 2)
    project.sql("UPDATE crm_contacts SET email = 'bad' || contact_id WHERE contact_id IN (3, 5, 7)")
    defs = project.definitions(failure_threshold=1.0)
    project.run_job(defs, "contacts_sync")
    project.run_job(defs, "contacts_retry_failed")
    third = project.run_job(defs, "contacts_retry_failed")

    assert third.success
    applied = metadata_values(materializations(third, "kizen/contacts")[0])
    assert (applied["open_failures_count"], applied["open_failures_parked"]) == (3, 3)
    assert len(applied["open_failures"].records) == 2
    [group] = applied["failure_reasons"].records
    assert (group.data["records"], group.data["source_keys"]) == (3, "3, 5, 7")
    stuck = checks(third)["contacts_failures_left_open"]
    assert (stuck.metadata["left_open"].value, stuck.metadata["open_failures"].value) == (3, 3)
    assert stuck.description == "3 record(s) failed in 3+ runs in a row."
