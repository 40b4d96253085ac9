"""The ``kizen-sync`` command line: exit statuses, tables, failures, and no secret in output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from kizen_sync.cli import cli
from kizen_sync.emulator import Emulator

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
