"""The Dagster half of ``make demo``: the demo's sync jobs run by Dagster, temporary storage.

``kizen-sync demo --workdir .demo`` leaves a warehouse, a sync file and the emulator's state in
``.demo``; its second run left one record failing (contact 7's e-mail is invalid). This module
plays what a data engineer does next, through Dagster rather than the CLI:

1. serve the demo's Kizen state on loopback (the emulator, real HTTP);
2. fix contact 7's e-mail in the warehouse;
3. run every ``<sync>_sync`` job (plan, blocking guards, apply) in process on a temporary
   Dagster instance, exactly as the schedule would;
4. print each step's counts and each check's result as tables.

Usage: ``python -m dagster_project.demo_run [WORKDIR]`` (default ``.demo``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from dagster_project.build import build_definitions
from kizen_sync.emulator import Emulator
from kizen_sync.render import make_console

__all__ = ["main", "run_demo_jobs"]

FIX_CONTACT_7 = (
    "UPDATE crm_contacts SET email = 'dennis.ritchie@example.com', "
    "updated_at = '2024-04-02 10:00:00' WHERE contact_id = 7"
)
_COUNTS = ("created", "updated", "archived", "unchanged", "failed")
_PLAN_KEYS = {
    "created": "would_create",
    "updated": "would_update",
    "archived": "would_archive",
    "failed": "rejected",
}
#: Dagster's console logger at WARNING: the tables below say what happened, step by step.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _value(metadata: dict[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _materialization_rows(result: dg.ExecuteInProcessResult) -> list[list[str]]:
    rows = []
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        metadata = dict(mat.metadata)
        # The plan asset reports what *would* happen (would_create, ...), the apply what did.
        keys = [k if k in metadata else _PLAN_KEYS.get(k, k) for k in _COUNTS]
        counts = [str(_value(metadata, k)) if k in metadata else "" for k in keys]
        rows.append([mat.asset_key.to_user_string(), *counts])
    return rows


def _check_rows(result: dg.ExecuteInProcessResult) -> list[list[str]]:
    rows = []
    for evaluation in result.get_asset_check_evaluations():
        verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        description = str(evaluation.description or "")
        rows.append([evaluation.check_name, verdict, description[:90]])
    return rows


def run_demo_jobs(workdir: Path, console: Console) -> bool:
    """Run every sync job of the demo in ``workdir``; True when all succeeded."""
    sync_file = workdir / "syncs.yaml"
    warehouse = workdir / "warehouse.db"
    if not sync_file.is_file() or not warehouse.is_file():
        console.print(f"[red]{sync_file} not found: run `kizen-sync demo --workdir {workdir}`")
        return False

    engine = create_engine(f"sqlite:///{warehouse}")
    try:
        with engine.begin() as conn:
            conn.execute(text(FIX_CONTACT_7))
    finally:
        engine.dispose()
    console.print("\n[bold]Dagster[/]: contact 7's e-mail fixed in the warehouse; running the jobs")

    emulator = Emulator.demo(state_path=workdir / "kizen_emulator.db")
    api_key, _, _ = emulator.credentials
    ok = True
    with (
        emulator.serve(host="127.0.0.1", port=0) as base_url,
        tempfile.TemporaryDirectory() as home,
    ):
        os.environ["KIZEN_BASE_URL"] = base_url
        os.environ.setdefault("KIZEN_API_KEY", api_key)
        defs = build_definitions(sync_file)
        with dg.DagsterInstance.local_temp(tempdir=home) as instance:
            steps = Table("asset", *_COUNTS, title="Dagster materializations")
            checks = Table("check", "result", "detail", title="Dagster asset checks")
            for job in sorted(j.name for j in defs.resolve_all_job_defs()):
                if not job.endswith("_sync"):
                    continue
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance, raise_on_error=False, run_config=_QUIET
                )
                ok = ok and result.success
                for row in _materialization_rows(result):
                    steps.add_row(*row)
                for row in _check_rows(result):
                    checks.add_row(*row)
                status = "[green]success" if result.success else "[red]failed"
                console.print(f"  job {job}: {status}[/] (run {result.run_id[:8]})")
            console.print(steps)
            console.print(checks)
    emulator.close()
    console.print(
        "Open the same project in the Dagster UI: `kizen-sync emulator --state "
        f"{workdir}/kizen_emulator.db` in one terminal, then "
        f"`KIZEN_SYNC_CONFIG={sync_file} KIZEN_API_KEY=demo-api-key make dagster`."
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dagster_project.demo_run``."""
    args = sys.argv[1:] if argv is None else argv
    workdir = Path(args[0]) if args else Path(".demo")
    return 0 if run_demo_jobs(workdir, make_console()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
