"""The ``kizen-sync`` command line: exit statuses, tables, failures, and no secret in output;
JSON documents, parked and grouped failures, validate, --version, -v anywhere,
$KIZEN_SYNC_CONFIG and JSON log lines, as schedulers and people use them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from kizen_sync.cli import cli
from kizen_sync.emulator import Emulator
from kizen_sync.errors import FatalError
from kizen_sync.output import ExitStatus, exit_status

SECRET = "sk-test-4f9a2c7e-never-print-me"


@pytest.fixture(scope="module")
def kizen() -> Iterator[tuple[Emulator, str]]:
    emu = Emulator.demo(api_key=SECRET)
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        yield emu, base_url


def _people(url: str, rows: list[tuple[int, str, str]]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS people"))
        conn.execute(
            text(
                "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT, status TEXT)"
            )
        )
        for i, first, status in rows:
            conn.execute(
                text("INSERT INTO people VALUES (:i, :e, :f, :s)"),
                {"i": i, "e": f"cli{i}@example.com", "f": first, "s": status},
            )
    engine.dispose()


@pytest.fixture
def project(tmp_path: Path, kizen: tuple[Emulator, str]) -> dict[str, Any]:
    emu, base_url = kizen
    _, user_id, business_id = emu.credentials
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    _people(url, [(i, f"First{i}", "Opted In") for i in range(1, 6)])
    config = {
        "warehouse": {"url": url},
        "kizen": {"base_url": base_url, "user_id": user_id, "business_id": business_id},
        "syncs": [
            {
                "name": "people",
                "object": "client_client",
                "source": {"table": "people", "primary_key": ["id"]},
                "identity": {"match_on": "email"},
                "mode": "upsert",
                "fields": [
                    {"column": "email", "field": "email"},
                    {"column": "first", "field": "first_name"},
                    {"column": "status", "field": "email_status"},
                ],
            }
        ],
    }
    path = tmp_path / "syncs.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"path": str(path), "url": url, "config": config}


def invoke(*args: str, key: str | None = SECRET) -> Result:
    env = {"KIZEN_API_KEY": key, "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert SECRET not in result.output
    assert "Traceback" not in result.output
    return result


def test_run_prints_a_summary_and_a_second_run_sends_nothing(project):
    first = invoke("run", "--config", project["path"])
    assert first.exit_code == 0, first.output
    row = next(line for line in first.output.splitlines() if line.startswith("│ people"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:6] == ["people", "5", "0", "0", "0", "0"]
    assert cells[-1] == "success"
    second = invoke("run", "--config", project["path"], "--sync", "people")
    assert second.exit_code == 0
    assert "success" in second.output


def test_a_failed_record_fails_the_run_and_shows_in_failures(project):
    _people(project["url"], [(1, "Ok", "Opted In"), (2, "Bad", "Nonsense Status")])
    result = invoke("run", "--config", project["path"])
    assert result.exit_code == 1
    assert "failed" in result.output
    listed = invoke("failures", "--config", project["path"])
    assert listed.exit_code == 0
    assert "Open failures (1)" in listed.output
    assert "email_status" in listed.output
    assert "MappingError" in listed.output


def test_plan_shows_field_changes_and_sends_nothing(project, kizen):
    emu, _ = kizen
    emu.request_log.reset()
    result = invoke("plan", "--config", project["path"])
    assert result.exit_code == 0, result.output
    assert "Planned changes: people" in result.output
    assert "first_name" in result.output
    assert "First3" in result.output
    assert sum(emu.request_log.total(method=m) for m in ("POST", "PATCH", "DELETE")) == 0


def test_plan_shows_option_labels_not_option_ids(
    project: dict[str, Any], kizen: tuple[Emulator, str]
) -> None:
    emu, _ = kizen
    assert invoke("run", "--config", project["path"]).exit_code == 0
    rows = [(i, f"First{i}", "Opted In") for i in range(1, 6)]
    rows[1] = (2, "First2", "Unsubscribed From All")
    _people(project["url"], rows)
    result = invoke("plan", "--config", project["path"])
    assert result.exit_code == 0, result.output
    assert "Opted In → Unsubscribed From All" in result.output
    contacts = next(o for o in emu.business.objects if o.name == "client_client")
    option_ids = list(contacts.by_name["email_status"].options_by_id)
    assert len(option_ids) == 4
    assert not any(option_id in result.output for option_id in option_ids)


def test_invalid_file_exits_2_listing_every_problem(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"warehouse": {}, "syncs": [{"name": "Bad Name"}]}))
    result = invoke("run", "--config", str(path))
    assert result.exit_code == 2
    assert "warehouse.url" in result.output
    assert "syncs[0]" in result.output


def test_an_unsupported_warehouse_exits_2_before_any_connection(tmp_path: Path):
    path = tmp_path / "oracle.yaml"
    spec = {
        "name": "people",
        "object": "client_client",
        "source": {"table": "people", "primary_key": ["id"]},
        "identity": {"match_on": "email"},
        "fields": [{"column": "email", "field": "email"}],
    }
    url = "oracle+oracledb://scott:tiger@db.example:1521/?service_name=orcl"
    path.write_text(yaml.safe_dump({"warehouse": {"url": url}, "syncs": [spec]}))
    result = invoke("plan", "--config", str(path))
    assert result.exit_code == 2
    assert "warehouse dialect 'oracle' is not supported (supported: " in result.output
    assert "tiger" not in result.output
    assert "oracledb" not in sys.modules  # the driver was never even imported


def test_missing_api_key_exits_2_naming_the_variable(project):
    result = invoke("run", "--config", project["path"], key=None)
    assert result.exit_code == 2
    assert "KIZEN_API_KEY" in result.output


def test_wrong_api_key_exits_1_with_a_clean_message(project):
    result = invoke("run", "--config", project["path"], key="wrong-key")
    assert result.exit_code == 1
    assert "401" in result.output


def test_mass_archive_guard_exits_2(project):
    assert invoke("run", "--config", project["path"]).exit_code == 0
    _people(project["url"], [(1, "First1", "Opted In")])
    result = invoke("run", "--config", project["path"])
    assert result.exit_code == 2
    assert "would archive 4 of 5 synced records" in result.output


def test_unknown_sync_exits_2(project):
    result = invoke("run", "--config", project["path"], "--sync", "nope")
    assert result.exit_code == 2
    assert "no sync named 'nope'" in result.output


def test_verbose_logs_never_print_the_key(project):
    result = invoke("--verbose", "run", "--config", project["path"])
    assert result.exit_code == 0


BAD_STATUS = "Nonsense Status"


def doc(result: Result) -> dict[str, Any]:
    """The one JSON document on stdout (json.loads fails on anything else there)."""
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def ten_percent_bad(url: str) -> None:
    _people(
        url, [(i, f"First{i}", BAD_STATUS if i % 10 == 0 else "Opted In") for i in range(1, 31)]
    )


def test_known_bad_rows_are_parked_and_later_runs_exit_0(project, kizen) -> None:
    emu, _ = kizen
    ten_percent_bad(project["url"])
    first = invoke("run", "--config", project["path"], "--json")
    assert first.exit_code == ExitStatus.RUN_FAILED
    [entry] = doc(first)["syncs"]
    counts = entry["counts"]
    assert (counts["created"] + counts["updated"], entry["new_failures"]) == (27, 3)

    emu.request_log.reset()
    second = invoke("run", "--config", project["path"], "--json")
    assert second.exit_code == 0, second.output
    [entry] = doc(second)["syncs"]
    assert (entry["status"], entry["planned"], entry["parked"]) == ("success", 0, 3)
    assert entry["parked_since"] is not None
    assert emu.request_log.total() == 0

    human = invoke("run", "--config", project["path"])
    assert human.exit_code == 0
    assert "people: 3 parked failures, unchanged since" in human.stdout

    listed = invoke("failures", "--config", project["path"], "--json")
    assert listed.exit_code == 0
    document = doc(listed)
    assert document["totals"] == {"open": 3, "parked": 3, "retrying": 0, "shown": 3}
    assert {f["source_key"] for f in document["failures"]} == {"10", "20", "30"}
    assert all(f["reason"].startswith("MappingError · email_status") for f in document["failures"])
    assert all(BAD_STATUS in f["error_message"] for f in document["failures"])
    [group] = document["groups"]
    assert (group["count"], group["parked"], group["field"]) == (3, 3, "email_status")

    table = invoke("failures", "--config", project["path"])
    assert "3 open: 3 parked, 0 retrying; showing 3" in table.stdout
    assert "Failures by reason" in table.stdout


def test_failures_filter_by_reason_and_age_and_keep_totals_true(project) -> None:
    ten_percent_bad(project["url"])
    invoke("run", "--config", project["path"])
    limited = doc(invoke("failures", "--config", project["path"], "--json", "--limit", "1"))
    assert (limited["totals"]["open"], limited["totals"]["shown"]) == (3, 1)
    assert len(limited["failures"]) == 1
    none = doc(invoke("failures", "--config", project["path"], "--json", "--reason", "409"))
    assert none["totals"]["open"] == 0
    some = doc(invoke("failures", "--config", project["path"], "--json", "--reason", "STATUS"))
    assert some["totals"]["open"] == 3
    old = doc(invoke("failures", "--config", project["path"], "--json", "--older-than", "1d"))
    assert old["totals"]["open"] == 0
    new = doc(invoke("failures", "--config", project["path"], "--json", "--newer-than", "1h"))
    assert new["totals"]["open"] == 3
    bad = invoke("failures", "--config", project["path"], "--older-than", "soon")
    assert bad.exit_code == ExitStatus.INVALID
    # The reason leaves values out so that failures group; --reason also finds the value.
    quoted = doc(invoke("failures", "--config", project["path"], "--json", "--reason", BAD_STATUS))
    assert quoted["totals"]["open"] == 3


def test_a_retry_says_which_failures_are_known_and_stays_green(project) -> None:
    ten_percent_bad(project["url"])
    invoke("run", "--config", project["path"])
    retried = invoke("retry", "--config", project["path"])
    assert retried.exit_code == 0, retried.output
    text = " ".join(retried.stdout.split())
    assert "people: 3 of the failed records failed as before" in text


def test_failures_json_lists_every_failure_and_the_tables_the_newest(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kizen_sync.cli.FAILURES_SHOWN", 2)
    ten_percent_bad(project["url"])
    invoke("run", "--config", project["path"])
    listed = doc(invoke("failures", "--config", project["path"], "--json"))
    assert listed["totals"] == {"open": 3, "parked": 3, "retrying": 0, "shown": 3}
    assert len(listed["failures"]) == 3
    table = invoke("failures", "--config", project["path"])
    assert "3 open: 3 parked, 0 retrying; showing 2" in table.stdout


def test_the_parked_note_names_the_sync_file_its_commands_need(project) -> None:
    ten_percent_bad(project["url"])
    invoke("run", "--config", project["path"])
    for command in ("run", "plan"):
        shown = invoke(command, "--config", project["path"])
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.stdout.split())  # rich wraps long lines
        assert f"kizen-sync failures --config {project['path']} --sync people" in text
        assert f"kizen-sync retry --config {project['path']} --sync people" in text


def test_long_keys_and_kizen_ids_never_wrap(project) -> None:
    assert invoke("run", "--config", project["path"]).exit_code == 0
    rows = [(i, f"First{i}", BAD_STATUS if i < 3 else "Opted In") for i in range(1, 6)]
    _people(project["url"], rows)
    invoke("run", "--config", project["path"])
    listed = doc(invoke("failures", "--config", project["path"], "--json"))["failures"]
    kizen_ids = [f["kizen_id"] for f in listed]
    assert len(kizen_ids) == 2
    assert all(kizen_ids)
    for width in ("60", "90", "200"):
        shown = CliRunner().invoke(
            cli,
            ["failures", "--config", project["path"]],
            env={"KIZEN_API_KEY": SECRET, "COLUMNS": width},
        )
        for kizen_id in kizen_ids:
            assert kizen_id in shown.stdout, (width, kizen_id)


def test_the_plan_shows_kizen_ids_whole_in_a_narrow_terminal(project) -> None:
    assert invoke("run", "--config", project["path"]).exit_code == 0
    _people(project["url"], [(i, f"Renamed{i}", "Opted In") for i in range(1, 6)])
    planned = doc(invoke("plan", "--config", project["path"], "--json"))["syncs"][0]
    kizen_ids = [op["kizen_id"] for op in planned["plan_sample"]]
    assert len(kizen_ids) == 5
    assert all(kizen_ids)
    for width in ("80", "120"):
        shown = CliRunner().invoke(
            cli,
            ["plan", "--config", project["path"]],
            env={"KIZEN_API_KEY": SECRET, "COLUMNS": width},
        )
        for kizen_id in kizen_ids:
            assert kizen_id in shown.stdout, (width, kizen_id)


def test_plan_json_is_one_document_and_progress_stays_off_stdout(project, kizen) -> None:
    result = invoke("plan", "--config", project["path"], "--json")
    assert result.exit_code == 0
    document = doc(result)
    assert (document["kizen_sync"], document["command"], document["exit_status"]) == (1, "plan", 0)
    [entry] = document["syncs"]
    assert (entry["status"], entry["counts"]["created"]) == ("dry_run", 5)
    sample = entry["plan_sample"][0]
    assert sample["operation"] == "create"
    assert {"field": "email_status", "change": "∅ → Opted In"} in sample["changes"]
    run = invoke("run", "--config", project["path"], "--json")
    counts = doc(run)["syncs"][0]["counts"]
    assert counts["created"] + counts["updated"] == 5


def test_errors_are_in_the_json_document_with_their_exit_status(project, tmp_path: Path) -> None:
    unknown = invoke("run", "--config", project["path"], "--sync", "nope", "--json")
    assert unknown.exit_code == ExitStatus.INVALID
    [error] = doc(unknown)["errors"]
    assert (error["error_class"], error["exit_status"]) == ("ConfigError", 2)
    assert "no sync named 'nope'" in error["message"]
    wrong_key = invoke("run", "--config", project["path"], "--json", key="wrong-key")
    assert wrong_key.exit_code == ExitStatus.RUN_FAILED
    assert doc(wrong_key)["errors"][0]["error_class"] == "AuthenticationError"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"warehouse": {}, "syncs": [{"name": "Bad Name"}]}))
    invalid = invoke("plan", "--config", str(path), "--json")
    assert invalid.exit_code == ExitStatus.INVALID
    keys = {p["key"] for p in doc(invalid)["errors"][0]["problems"]}
    assert "warehouse.url" in keys


@pytest.mark.parametrize(
    ("args", "command", "error_class"),
    [
        (["failures", "--older-than", "soon"], "failures", "BadParameter"),
        (["run", "--max-records", "0"], "run", "BadParameter"),
        (["plan", "--no-such-option"], "plan", "NoSuchOption"),
        (["no-such-command"], None, "NoSuchCommand"),
    ],
)
def test_a_refused_command_line_still_prints_one_json_document(
    project, args: list[str], command: str | None, error_class: str
) -> None:
    result = invoke(*args, "--config", project["path"], "--json")
    assert result.exit_code == ExitStatus.INVALID
    document = doc(result)
    assert (document["command"], document["exit_status"]) == (command, 2)
    [error] = document["errors"]
    assert (error["error_class"], error["exit_status"]) == (error_class, 2)
    assert "Usage:" in result.stderr  # click's own text stays on stderr


def test_guard_stop_exits_2(project) -> None:
    assert invoke("run", "--config", project["path"]).exit_code == 0
    _people(project["url"], [(1, "First1", "Opted In")])
    result = invoke("run", "--config", project["path"], "--json")
    assert result.exit_code == ExitStatus.INVALID
    assert doc(result)["errors"][0]["error_class"] == "GuardError"


def test_another_run_holding_the_sync_is_exit_status_3(project) -> None:
    from kizen_sync.warehouse import StateStore, Warehouse
    from kizen_sync.warehouse.lease import Leases

    warehouse = Warehouse(project["url"])
    store = StateStore(warehouse)
    store.ensure_schema()
    lease = Leases(warehouse, store.tables).acquire("people", "another-run")
    try:
        result = invoke("run", "--config", project["path"], "--json")
        assert result.exit_code == ExitStatus.BUSY == 3
        [error] = doc(result)["errors"]
        assert (error["error_class"], error["exit_status"], error["sync"]) == (
            "LeaseHeldError",
            3,
            "people",
        )
        assert "another-run" in error["message"]
    finally:
        lease.release()
        warehouse.dispose()
    assert exit_status(FatalError("boom")) == ExitStatus.RUN_FAILED


def test_validate_reports_every_problem_at_once(project, tmp_path: Path) -> None:
    config = project["config"]
    sync = config["syncs"][0]
    sync["fields"][1] = {"column": "no_such_column", "field": "first_name"}
    sync["fields"][2] = {"column": "status", "field": "no_such_field"}
    sync["fields"].append({"column": "another_missing_column", "field": "email_status"})
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke("validate", "--config", str(path), "--json")
    assert result.exit_code == ExitStatus.INVALID
    document = doc(result)
    assert document["valid"] is False
    messages = " | ".join(f"{p['key']}: {p['message']}" for p in document["problems"])
    assert "no_such_column" in messages
    assert "no_such_field" in messages
    by_key = {p["key"]: p["message"] for p in document["problems"]}
    assert by_key["syncs[0].fields[1].column"].startswith("unknown column 'no_such_column' (")
    assert by_key["syncs[0].fields[3].column"].startswith("unknown column 'another_missing_")
    human = invoke("validate", "--config", str(path))
    assert "3 problem(s)" in human.stdout
    ok = invoke("validate", "--config", project["path"])
    assert ok.exit_code == 0
    assert "valid (file, warehouse and Kizen schema checked)" in ok.stdout
    offline = invoke("validate", "--config", project["path"], "--offline", key=None)
    assert offline.exit_code == 0


def test_version_verbose_anywhere_and_config_from_the_environment(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.output.startswith("kizen-sync ")
    env = {"KIZEN_API_KEY": SECRET, "KIZEN_SYNC_CONFIG": project["path"], "COLUMNS": "200"}
    quiet = CliRunner().invoke(cli, ["run"], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert "sync people success" not in quiet.stderr
    after = CliRunner().invoke(cli, ["run", "-v"], env=env)
    assert after.exit_code == 0
    assert "sync people success" in after.stderr
    before = CliRunner().invoke(cli, ["-v", "run"], env=env)
    assert before.exit_code == 0
    assert "sync people success" in before.stderr
    # -v shows the steps too: the lease, then what the diff found and what the plan sends.
    assert "holds the sync's lease" in before.stderr
    planned = CliRunner().invoke(cli, ["plan", "-v"], env=env)
    assert planned.exit_code == 0
    assert "sync people: diff found 0 new, 0 changed, 0 deleted of" in planned.stderr
    missing = CliRunner().invoke(cli, ["plan"], env={"KIZEN_SYNC_CONFIG": ""})
    assert missing.exit_code == ExitStatus.INVALID
    assert "KIZEN_SYNC_CONFIG" in missing.output


def test_log_format_json_writes_one_json_object_per_line(project) -> None:
    env = {"KIZEN_API_KEY": SECRET, "COLUMNS": "200", "KIZEN_SYNC_LOG_FORMAT": "json"}
    result = CliRunner().invoke(cli, ["run", "--config", project["path"], "-v"], env=env)
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines
    records = [json.loads(line) for line in lines]
    assert {"event", "level", "logger", "timestamp"} <= set(records[0])
    assert any(r["logger"] == "kizen_sync.runner" for r in records)
    assert SECRET not in result.stderr


def test_a_wrong_column_and_a_wrong_field_both_exit_2(project, tmp_path: Path) -> None:
    config = project["config"]
    column = yaml.safe_load(yaml.safe_dump(config))
    column["syncs"][0]["fields"][1]["column"] = "no_such_column"
    field = yaml.safe_load(yaml.safe_dump(config))
    field["syncs"][0]["fields"][1]["field"] = "no_such_field"
    for name, broken in (("column", column), ("field", field)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(broken))
        result = invoke("run", "--config", str(path), "--json")
        assert result.exit_code == ExitStatus.INVALID, (name, result.output)
        assert f"no_such_{name}" in doc(result)["errors"][0]["message"]
