"""Change-detection speed: the diff of a large source vs a plain scan of the same columns.

``python -m bench.diff_speed [--rows N] [--engines sqlite,postgresql] [--repeats R]``

Per engine it builds one fixture (``bench.fixtures``: ``rows`` generated rows, a
``sync_state`` filled with the engine's own fingerprints, then 1 % churn: 0.5 % edited,
0.3 % new, 0.2 % deleted) and then times, each measurement in a fresh process (so that its
peak RSS, VmHWM, is its own) and repeated ``R`` times round-robin (the machine is shared:
the best run is the least disturbed, the spread is printed too):

* ``scan``: the plain in-database scan of the same columns, ``SELECT count(*),
  sum(length(CAST(c AS TEXT)))...`` over the key and the 8 mapped columns. It reads and renders
  every value and transfers nothing: the baseline of the "diff within 2x a plain scan" target.
* ``counts``: :meth:`ChangeDetector.counts` (full new/changed/deleted/unchanged aggregates;
  what the dry-run plan pays).
* ``guard``: :meth:`ChangeDetector.archive_counts` (key-only: what a normal run's guards pay),
  when the code under test has it.
* ``stream``: iterating :meth:`ChangeDetector.iter_changes` to the end.
* ``run path`` = what one ``SyncRunner.run`` pays for change detection: ``guard + stream`` when
  ``archive_counts`` exists, else ``counts + stream`` (the old double scan).

Every detector call includes the primary-key check, as in a real run. PostgreSQL gets a
database of its own (``kizen_diffspeed_<pid>``, dropped at the end); SQLite a temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.memory import vm_hwm_mib

TABLE = "accounts_src"
SYNC = "diffspeed"
TASKS = ("scan", "counts", "guard", "stream")


# --- worker side (one measurement per process) -------------------------------------------------


def _measure(task: str, url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from kizen_sync.config import SyncConfig
    from kizen_sync.warehouse import ChangeDetector, Warehouse

    out: dict[str, Any] = {}
    if task == "scan":
        engine = create_engine(url)
        cols = ["id", *fixtures.COLUMNS]
        sums = ", ".join(f"sum(length(CAST({c} AS TEXT)))" for c in cols)
        try:
            with engine.connect() as conn:
                t0 = time.perf_counter()
                row = conn.exec_driver_sql(f"SELECT count(*), {sums} FROM {TABLE}").one()
                out["seconds"] = time.perf_counter() - t0
                out["rows"] = int(row[0])
        finally:
            engine.dispose()
    else:
        sync = SyncConfig.model_validate(fixtures.sync_dict(TABLE, name=SYNC))
        warehouse = Warehouse(url)
        try:
            detector = ChangeDetector(warehouse, sync)
            detector.store.ensure_schema()
            t0 = time.perf_counter()
            if task == "counts":
                out["result"] = detector.counts().__dict__
            elif task == "guard":
                if not hasattr(detector, "archive_counts"):
                    return {"skipped": True}
                out["result"] = detector.archive_counts().__dict__
            elif task == "stream":
                kinds: dict[str, int] = {}
                for chunk in detector.iter_changes(chunk_size=1000):
                    for change in chunk:
                        kinds[change.kind.value] = kinds.get(change.kind.value, 0) + 1
                out["result"] = kinds
            else:
                raise ValueError(f"unknown task {task!r}")
            out["seconds"] = time.perf_counter() - t0
        finally:
            warehouse.dispose()
    out["peak_rss_mib"] = vm_hwm_mib()
    return out


def _run_worker(task: str, url: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.diff_speed", "--worker", task, "--url", url],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {task} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# --- driver ------------------------------------------------------------------------------------


def _fixture(url: str, rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    fixtures.create_accounts(url, TABLE, rows)
    state = fixtures.seed_state(url, fixtures.sync_dict(TABLE, name=SYNC))
    churn = fixtures.Churn.mixed(rows, 0.01).apply(url, TABLE, rows)
    return {"build_s": time.perf_counter() - t0, "state_rows": state, "churn": churn}


def _bench_engine(engine: str, url: str, rows: int, repeats: int) -> dict[str, Any]:
    built = _fixture(url, rows)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TASKS}
    for _ in range(repeats):
        for task in TASKS:
            runs[task].append(_run_worker(task, url))
    has_guard = not runs["guard"][0].get("skipped")
    secs = {t: [r["seconds"] for r in runs[t]] for t in TASKS if "seconds" in runs[t][0]}
    first = "guard" if has_guard else "counts"
    path = [a + b for a, b in zip(secs[first], secs["stream"], strict=True)]
    best_scan = min(secs["scan"])
    return {
        "engine": engine,
        "rows": rows,
        "fixture": built,
        "seconds": secs,
        "run_path": path,
        "run_path_is": f"{first} + stream",
        "ratio_best": min(path) / best_scan,
        "ratio_stream_best": min(secs["stream"]) / best_scan,
        "peak_rss_mib": {t: max(r.get("peak_rss_mib") or 0 for r in runs[t]) for t in secs},
        "counts": runs["counts"][0].get("result"),
        "guard": runs["guard"][0].get("result"),
        "streamed": runs["stream"][0].get("result"),
        "load": os.getloadavg(),
    }


def _fmt(values: list[float]) -> str:
    best = min(values)
    spread = f" (median {statistics.median(values):.2f}, max {max(values):.2f})"
    return f"{best:.2f}{spread if len(values) > 1 else ''}"


def _print(result: dict[str, Any]) -> None:
    s = result["seconds"]
    print(f"\n{result['engine']}: {result['rows']:,} rows, churn {result['fixture']['churn']}")
    print(f"  fixture built in {result['fixture']['build_s']:.1f} s; load {result['load']}")
    for task in TASKS:
        if task in s:
            print(f"  {task:<8} best {_fmt(s[task])} s  peak {result['peak_rss_mib'][task]} MiB")
    print(f"  run path ({result['run_path_is']}) best {_fmt(result['run_path'])} s")
    print(
        f"  ratio run path / plain scan: {result['ratio_best']:.2f}x"
        f"  (stream alone {result['ratio_stream_best']:.2f}x)"
    )
    print(f"  counts {result['counts']}")
    print(f"  guard  {result['guard']}")
    print(f"  stream {result['streamed']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diff_speed", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_measure(args.worker, args.url), default=str))
        return 0
    results = []
    for engine in args.engines.split(","):
        if engine == "postgresql":
            with fixtures.pg_database(f"kizen_diffspeed_{os.getpid()}") as url:
                results.append(_bench_engine(engine, url, args.rows, args.repeats))
        elif engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="kizen_diffspeed_") as tmp:
                url = f"sqlite:///{Path(tmp) / 'warehouse.db'}"
                results.append(_bench_engine(engine, url, args.rows, args.repeats))
        else:
            parser.error(f"unknown engine {engine!r}")
        _print(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
