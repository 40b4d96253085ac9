"""`make demo`'s Dagster half: after the CLI demo, the sync jobs run through Dagster."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from dagster_project.demo_run import run_demo_jobs
from kizen_sync.demo import run_demo
from kizen_sync.emulator import Emulator


def test_demo_jobs_fix_the_failed_contact_through_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIZEN_API_KEY", raising=False)
    monkeypatch.delenv("KIZEN_BASE_URL", raising=False)
    quiet = Console(file=io.StringIO(), width=120)
    run_demo(workdir=tmp_path, console=quiet)

    out = Console(file=io.StringIO(), width=160)
    assert run_demo_jobs(tmp_path, out) is True
    printed = out.file.getvalue()  # type: ignore[attr-defined]
    assert "job contacts_sync: success" in printed
    assert "job accounts_sync: success" in printed

    emulator = Emulator.demo(state_path=tmp_path / "kizen_emulator.db")
    try:
        emails = {
            field["value"]
            for record in emulator.records("client_client")
            for field in record["fields"].values()
            if field["name"] == "email"
        }
    finally:
        emulator.close()
    assert "dennis.ritchie@example.com" in emails


def test_demo_jobs_explain_a_missing_workdir(tmp_path: Path) -> None:
    out = Console(file=io.StringIO(), width=160)
    assert run_demo_jobs(tmp_path / "nowhere", out) is False
    assert "kizen-sync demo --workdir" in out.file.getvalue()  # type: ignore[attr-defined]
