"""``python -m bench``: measure kizen-sync on this machine, beside the alternatives.

    python -m bench                  # everything, full sizes (~15 minutes)
    python -m bench --quick          # small sizes (about a minute on a quiet machine)
    python -m bench --smoke          # tiny sizes, in seconds: every part runs (the test suite)
    python -m bench --only diff      # one part (repeat --only for several)

Parts: throughput (1), requests (2), diff (3), nochange (4), peers (5). Prints one table per
part and a table of targets, and writes every figure plus the machine facts to
``bench/results/latest.json``. All traffic stays on loopback; servers and workers are
separate processes, stopped when their part ends; the PostgreSQL database and the scratch
directory of the run are removed at the end (``--pg-database`` names the database, e.g. one a
test fixture owns and drops whatever happens to this process).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench import fixtures
from bench.context import Context
from bench.machine import load_average, machine_facts
from bench.report import Section, print_section, print_targets, write_json
from bench.sections import changes, peers, requests, throughput
from bench.sizes import FULL, QUICK, SMOKE

__all__ = ["PARTS", "main"]

PARTS = ("throughput", "requests", "diff", "nochange", "peers")
DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


def _guarded(name: str, title: str, run: Callable[[], list[Section]]) -> list[Section]:
    """Run one part; a failure becomes a section carrying the error, not a lost run."""
    try:
        return run()
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        traceback.print_exc()
        return [Section(name=name, title=title, columns=[], error=detail[-1500:])]


def _database_name(value: str) -> str:
    """A plain lower-case identifier (it is put into CREATE/DROP DATABASE)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a plain lower-case identifier")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen parts, print and write the results; 1 if a part failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes")
    size.add_argument(
        "--smoke", action="store_true", help="tiny sizes, in-process workers (figures void)"
    )
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    parser.add_argument(
        "--pg-database",
        type=_database_name,
        default=f"kizen_bench_{os.getpid()}",
        help="PostgreSQL database to create and drop (default kizen_bench_<pid>)",
    )
    args = parser.parse_args(argv)
    wanted = set(args.only or PARTS)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    console = Console(width=None if sys.stdout.isatty() else 200)
    started = time.perf_counter()

    def say(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:7.1f}s  {message}[/dim]")

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    with (
        tempfile.TemporaryDirectory(prefix="kizen-bench-") as tmp,
        fixtures.pg_database(args.pg_database) as pg_url,
    ):
        machine = machine_facts(pg_url)
        say(
            f"{sizes.name} sizes; {machine['cpu_model']}, {machine['logical_cores']} cores, "
            f"load {machine['load_average_start']}"
        )
        ctx = Context(sizes=sizes, pg_url=pg_url, tmp=Path(tmp), say=say)
        sections: list[Section] = []
        if "throughput" in wanted:
            sections += _guarded("throughput", "1. throughput", lambda: [throughput.run(ctx)])
        if "requests" in wanted:
            sections += _guarded("requests", "2. requests", lambda: [requests.run(ctx)])
        if wanted & {"diff", "nochange"}:
            sections += _guarded(
                "diff" if "diff" in wanted else "nochange",
                "3./4. change detection",
                lambda: changes.run(
                    ctx, want_diff="diff" in wanted, want_nochange="nochange" in wanted
                ),
            )
        if "peers" in wanted:
            sections += _guarded("peers", "5. peers", lambda: [peers.run(ctx)])
    machine["load_average_end"] = load_average()
    machine["bench_seconds"] = round(time.perf_counter() - started, 1)
    sections.sort(key=lambda s: PARTS.index(s.name) if s.name in PARTS else len(PARTS))
    console.print()
    for section in sections:
        print_section(console, section)
        console.print()
    print_targets(console, sections)
    write_json(args.json, machine, sizes.as_dict(), sections)
    console.print(
        f"machine: {machine['cpu_model']}, {machine['logical_cores']} cores, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}, PostgreSQL "
        f"{machine['postgresql']}, load {machine['load_average_start']} -> "
        f"{machine['load_average_end']}"
    )
    console.print(f"wrote {args.json} in {machine['bench_seconds']} s")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
