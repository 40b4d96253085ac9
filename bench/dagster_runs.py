"""Wall time of a demo Dagster sync run, launch to success, per executor.

    .venv/bin/python -m bench.dagster_runs [--repeats 3] [--executor in_process ...]

Each measurement is one ``dagster job execute -m dagster_project.definitions -j contacts_sync``
process, the way a person or a scheduler's run worker starts a run, against the demo (a fresh
``kizen-sync demo`` work directory, the emulator serving its state in its own process) on a
fresh SQLite-backed ``DAGSTER_HOME``. Before each run one contact's first name is edited, so
every run plans and sends exactly one PATCH (contact 7, whose e-mail the demo leaves invalid,
is fixed first, as ``make demo`` does). Two figures per run:

* ``command s``: the whole command, process start (imports, code location load) to exit;
* ``run s``: the run's own start to end as Dagster records them (launch to success).

``PYTHONDONTWRITEBYTECODE`` is removed from the runs' environment (the byte-code cache is
warm, as on any installed machine); ``--no-bytecode`` keeps it. Prints figures, asserts none.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from bench.machine import load_average
from bench.proc import ROOT, start_emulator
from dagster_project.demo_run import FIX_CONTACT_7

EXECUTORS = ("multiprocess", "in_process")
_DAGSTER = str(Path(sys.executable).with_name("dagster"))
_JOB_EXECUTE = ["job", "execute", "-m", "dagster_project.definitions", "-j", "contacts_sync"]


def _edit(warehouse: Path, n: int) -> None:
    engine = create_engine(f"sqlite:///{warehouse}")
    try:
        with engine.begin() as conn:
            conn.execute(text(FIX_CONTACT_7))  # the demo leaves contact 7's e-mail invalid
            conn.execute(
                text(
                    "UPDATE crm_contacts SET first_name = :name, updated_at = CURRENT_TIMESTAMP"
                    " WHERE contact_id = 1"
                ),
                {"name": f"Ada{n}"},
            )
    finally:
        engine.dispose()


def _run_seconds(home: Path) -> float:
    """Start to end of the last run in the instance at ``home``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        record = instance.get_run_records(limit=1)[0]
        if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"run {record.dagster_run.run_id} ended {record.dagster_run.status}")
        assert record.start_time is not None
        assert record.end_time is not None
        return record.end_time - record.start_time


def measure(executors: list[str], repeats: int, keep_bytecode_flag: bool) -> list[list[str]]:
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="kizen-dagster-bench-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [str(Path(sys.executable).with_name("kizen-sync")), "demo", "--workdir", str(work)],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        with start_emulator(latency_ms=0, state=work / "kizen_emulator.db") as emulator:
            env = dict(os.environ)
            if not keep_bytecode_flag:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
            env |= {
                "KIZEN_SYNC_CONFIG": str(work / "syncs.yaml"),
                "KIZEN_BASE_URL": emulator.base_url,
                "KIZEN_API_KEY": "demo-api-key",
            }
            n = 0
            for executor in executors:
                for _ in range(repeats):
                    n += 1
                    home = work / f"home-{n}"
                    home.mkdir()
                    _edit(work / "warehouse.db", n)
                    run_env = env | {"KIZEN_SYNC_EXECUTOR": executor, "DAGSTER_HOME": str(home)}
                    started = time.perf_counter()
                    done = subprocess.run(
                        [_DAGSTER, *_JOB_EXECUTE],
                        check=False,
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env=run_env,
                    )
                    if done.returncode != 0:
                        raise RuntimeError(f"{executor} run failed:\n{done.stderr[-3000:]}")
                    command_s = time.perf_counter() - started
                    load = " ".join(str(x) for x in load_average())
                    rows.append([executor, f"{command_s:.1f}", f"{_run_seconds(home):.1f}", load])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dagster_runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executor", action="append", choices=EXECUTORS)
    parser.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    args = parser.parse_args(argv)
    rows = measure(args.executor or list(EXECUTORS), args.repeats, args.no_bytecode)
    table = Table("executor", "command s", "run s (launch to success)", "load average")
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
