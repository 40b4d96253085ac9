"""The ``kill -9`` loop: one change run of the CLI, killed at seeded moments, then run to the end.

All traffic stays on 127.0.0.1; every wait is bounded by a deadline (a hang guard, never a
speed requirement) and every process started here is killed and reaped by its pid.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import yaml
from sqlalchemy import create_engine

from kizen_sync.client import ClientSettings
from kizen_sync.config import ProjectConfig, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.warehouse import StateStore, Warehouse
from tests.support.crash_analysis import (
    FLUSH_EVERY,
    CrashLoopResult,
    KillPoint,
    Segment,
    analyse,
    one_success_per_change,
)
from tests.support.journal import serve
from tests.support.people import SYNC, initial_rows, mutate, project_dict, write_rows
from tests.support.verdict import audit_problems, compare

__all__ = ["cli_command", "crash_loop", "kill_points"]


def kill_points(seed: int, crashes: int, changes: int) -> list[KillPoint]:
    """Seeded kill moments in three regimes, so that every crash point of the design is hit.

    - one in four after a delay of 0.5-5 s from process start: start-up takes seconds
      (imports), so these land in imports, planning or the first writes;
    - six in ten after a small number of writes (1 up to ``0.7 * changes / crashes``),
      usually before the first batch of results was committed;
    - the rest (about one in seven) after a large number of writes (one to two flush
      batches), when some batches are committed and the re-sends are bounded by the window.

    Kills that confirm batches consume the change run; the mix keeps enough work for every
    kill to land in a running sync.
    """
    rng = random.Random(seed)
    small = max(4, int(0.7 * changes / max(1, crashes)))
    low, high = min(FLUSH_EVERY, int(0.4 * changes)), min(2 * FLUSH_EVERY + 50, int(0.6 * changes))
    points = []
    for _ in range(crashes):
        draw = rng.random()
        if draw < 0.25:
            points.append(KillPoint("seconds", round(rng.uniform(0.5, 5.0), 2)))
        elif draw < 0.85:
            points.append(KillPoint("writes", rng.randint(1, small)))
        else:
            points.append(KillPoint("writes", rng.randint(low, max(low, high))))
    return points


def cli_command() -> list[str]:
    """The ``kizen-sync`` console script of this interpreter (or the module behind it)."""
    script = Path(sys.executable).with_name("kizen-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from kizen_sync.cli import main; main()"]


def _wait_until(proc: subprocess.Popen[bytes], done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll every 2 ms until ``done()`` (True) or the process exits / times out (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def crash_loop(
    workdir: Path,
    *,
    seed: int,
    base_rows: int,
    changes: int,
    crashes: int,
    max_in_flight: int = 8,
    latency_ms: float = 5.0,
    segment_timeout_s: float = 240.0,
    final_timeout_s: float = 600.0,
) -> CrashLoopResult:
    """One change run of ``changes`` changes, killed ``crashes`` times, then run to the end.

    The warehouse holds ``base_rows`` contacts synced beforehand (in-process); the source is
    then changed (creates, updates, tag add/remove, deletions) and the CLI ``kizen-sync run``
    is started in a subprocess, killed with SIGKILL at a seeded moment, started again, and so
    on; a last run goes to the end. Re-sends per crash come from the emulator's write journal
    (records a killed run got applied) and the audit table (those it had confirmed).
    """
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "warehouse.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    started = time.monotonic()
    emu = Emulator.demo()
    engine = create_engine(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with serve(emu) as (base_url, journal):
            config = workdir / "syncs.yaml"
            data = project_dict(url, base_url, emu, max_in_flight=max_in_flight)
            config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            project: ProjectConfig = parse_config(data)
            key, user, business = emu.credentials
            settings = ClientSettings(
                base_url=base_url, api_key=key, user_id=user, business_id=business
            )
            rows = initial_rows(rng, base_rows)
            write_rows(engine, rows)
            with SyncRunner(project, client_settings=settings) as runner:
                report = runner.run(SYNC)
                if report.status != "success":
                    raise RuntimeError(f"the initial sync failed: {report.message}")
            rows, mix, deleted = mutate(rows, rng, changes, base_rows + 1)
            write_rows(engine, rows)
            emu.set_knobs(latency_ms=latency_ms)
            result = CrashLoopResult(seed, base_rows, mix, max_in_flight, latency_ms)
            env = {**os.environ, "KIZEN_API_KEY": key, "COLUMNS": "120"}
            env.pop("KIZEN_BASE_URL", None)
            segments: list[Segment] = []
            points = kill_points(seed, crashes, changes)
            exits: list[int | None] = []

            def start_run(log: IO[bytes]) -> subprocess.Popen[bytes]:
                """``kizen-sync run`` in its own process, output to ``log``."""
                proc = subprocess.Popen(
                    [*cli_command(), "run", "--config", str(config)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                procs.append(proc)
                return proc

            for number, point in enumerate(points):
                begin, wall_begin = len(journal), datetime.now(UTC)
                with (workdir / f"run{number:02d}.log").open("wb") as log:
                    proc = start_run(log)
                    t0 = time.monotonic()
                    if point.kind == "writes":
                        due = _wait_until(
                            proc,
                            lambda b=begin, v=point.value: len(journal) - b >= v,
                            segment_timeout_s,
                        )
                    else:
                        due = _wait_until(
                            proc,
                            lambda t=t0, v=point.value: time.monotonic() - t >= v,
                            segment_timeout_s,
                        )
                    killed = due and proc.poll() is None
                    _reap(proc)
                end = len(journal)
                segments.append((begin, end, wall_begin, datetime.now(UTC), killed))
                exits.append(proc.returncode)
                if not killed:
                    break  # the run ended before its kill moment (no work left, or it failed)
            final_begin, wall_begin = len(journal), datetime.now(UTC)
            with (workdir / "final.log").open("wb") as log:
                proc = start_run(log)
                try:
                    result.final_exit = proc.wait(timeout=final_timeout_s)
                finally:
                    _reap(proc)
            segments.append((final_begin, len(journal), wall_begin, datetime.now(UTC), False))
            result.writes_total = len(journal)
            emu.set_knobs(latency_ms=0)
            result.crashes = analyse(journal, emu, url, segments, points)
            for crash, code in zip(result.crashes, exits, strict=True):
                crash.exit_code = code
            result.verdict = compare(emu, project.syncs[0], rows, deleted)
            with Warehouse(url) as warehouse:
                store = StateStore(warehouse)
                finished = {
                    s["run_id"]
                    for s in store.run_summaries(SYNC, limit=None)
                    if s["status"] in ("success", "failed")
                }
                result.verdict.audit = audit_problems(store, SYNC, finished)
                result.verdict.audit += one_success_per_change(store, segments)
    finally:
        for proc in procs:
            _reap(proc)
        engine.dispose()
        emu.close()
    result.seconds = time.monotonic() - started
    return result
