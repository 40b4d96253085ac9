"""``python -m bench.reliability [--quick]``: faults, kill -9 loop and bad input, with figures.

Runs, with fixed seeds, everything ``tests/reliability`` checks in CI but at full size:

1. fault runs over real HTTP against the emulator (10 % 5xx, 429 storms with Retry-After,
   slow answers past the client timeout, dropped connections, few attempts against many 5xx
   so the next run must finish the job, and all of them mixed on PostgreSQL when reachable);
2. the ``kill -9`` loop: one change run of 3,000 mixed changes killed 20 times;
3. overlapping runs: two ``kizen-sync run`` processes of one sync at every moment (before
   either holds it, mid-apply, after, the first killed mid-apply), waiting or not, on SQLite
   and PostgreSQL, plus two opposite-order state flushes on PostgreSQL (deadlocks);
4. the bad-input catalogue (with re-keys, collisions, damaged state, bad bytes and a source
   emptied mid-run).

Prints the figures and writes them, with the method, seeds and how to reproduce, to
``RELIABILITY.md`` (full run) or to ``--out`` (any run). Exit status 1 when any invariant
broke, so the command can gate a release.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.support.bad_input import CATALOGUE, BadInput, run_case
from tests.support.crash_analysis import FLUSH_EVERY, CrashLoopResult
from tests.support.crash_loop import crash_loop
from tests.support.faults import SCENARIOS, FaultResult, fault_run
from tests.support.overlap import MOMENTS, OverlapResult, flush_deadlocks, overlap_run
from tests.support.postgres import PG_URL, owned_schema

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """How big each part is."""

    name: str
    fault_seeds: tuple[int, ...]
    fault_records: int
    fault_rounds: int
    crash_seed: int
    crash_base_rows: int
    crash_changes: int
    crashes: int
    overlap_moments: tuple[str, ...]
    overlap_waits: tuple[bool, ...]
    overlap_rows: int


QUICK = Sizes("quick", (11,), 200, 2, 145, 200, 300, 3, ("apply", "killed"), (True,), 40)
# 3,000 changes: enough work left for all 20 kills to land in a running sync (with 2,400 the
# change run was finished after 17 once start-up got faster).
FULL = Sizes("full", (101, 102, 103), 500, 3, 2026, 1500, 3000, 20, MOMENTS, (True, False), 60)


@dataclass
class BadInputOutcome:
    """One catalogue case and whether it behaved as expected."""

    case: BadInput
    passed: bool
    error: str = ""


@dataclass
class Report:
    """Everything measured in one invocation."""

    sizes: Sizes
    started: datetime
    faults: list[FaultResult] = field(default_factory=list)
    crash: CrashLoopResult | None = None
    bad_input: list[BadInputOutcome] = field(default_factory=list)
    overlap: list[OverlapResult] = field(default_factory=list)
    deadlocks: int | None = None  # PostgreSQL only
    seconds: float = 0.0
    pg: bool = False

    @property
    def ok(self) -> bool:
        """Every invariant held in every part."""
        return (
            all(f.ok for f in self.faults)
            and (
                self.crash is None
                or (self.crash.ok and len(self.crash.resent) >= self.sizes.crashes)
            )
            and all(b.passed for b in self.bad_input)
            and all(o.ok for o in self.overlap)
            and not self.deadlocks
        )

    def figures(self) -> list[tuple[str, str]]:
        """The summary table: (figure, value)."""
        faults: Counter[str] = Counter()
        for f in self.faults:
            faults.update(f.faults)
        crash = self.crash
        runs = sum(f.runs for f in self.faults)
        crash_runs = 0
        resent = "-"
        if crash is not None:
            crash_runs = len(crash.crashes) + 2  # killed runs, the final run, the initial sync
            low, mid, high = crash.resent_stats()
            resent = f"{low} / {mid:g} / {high} (bound {crash.bound})"
        lost = sum(f.lost for f in self.faults)
        dup = sum(f.duplicated for f in self.faults)
        audit = sum(f.audit_problems for f in self.faults)
        if crash is not None:
            v = crash.verdict
            lost += len(v.lost) + len(v.missing) + len(v.not_archived)
            dup += len(v.duplicated)
            audit += len(v.audit)
        for o in self.overlap:
            lost += len(o.after.lost) + len(o.after.missing) + len(o.after.not_archived)
            dup += len(o.after.duplicated)
        handled = sum(b.passed for b in self.bad_input)
        overlap_runs = sum(len(o.exits) + 2 for o in self.overlap)  # A, B, initial, final
        killed = [o for o in self.overlap if o.moment == "killed"]
        return [
            (
                "sync runs (fault runs incl. automatic next runs + crash loop)",
                str(runs + crash_runs),
            ),
            ("fault runs (scenario x seed)", str(len(self.faults))),
            (
                "record changes synced under faults (first syncs + change rounds)",
                str(sum(f.changes for f in self.faults)),
            ),
            ("faults injected: 5xx", str(faults["error"])),
            ("faults injected: 429 with Retry-After", str(faults["throttled"])),
            ("faults injected: slow answer past the client timeout", str(faults["slow"])),
            ("faults injected: connection dropped before processing", str(faults["drop_before"])),
            ("faults injected: connection dropped after processing", str(faults["drop_after"])),
            ("automatic next runs needed", str(sum(f.next_run_retries for f in self.faults))),
            ("retried attempts in the audit table", str(sum(f.retry_rows for f in self.faults))),
            (
                "kill -9 crashes (landed in a running sync / seeded)",
                f"{len(crash.resent) if crash else 0} / {self.sizes.crashes}",
            ),
            ("changes in the killed run", str(crash.mix.total if crash else 0)),
            ("records re-sent per crash (min / median / max)", resent),
            ("confirmed records re-sent after a crash", str(_crash_sum(crash, "confirmed_resent"))),
            (
                "applied records not re-sent after a crash",
                str(_crash_sum(crash, "unconfirmed_not_resent")),
            ),
            (
                "overlapping runs: scenarios (moment x waiting or not x warehouse) / runs",
                f"{len(self.overlap)} / {overlap_runs}",
            ),
            (
                "scenarios where a run waited for the other's lease / stopped with exit 3",
                f"{sum(bool(o.waited) for o in self.overlap)} / "
                f"{sum(3 in o.exits.values() for o in self.overlap)}",
            ),
            (
                "stale values found (Kizen differs while the state says in step)",
                str(sum(len(o.stale) for o in self.overlap)),
            ),
            (
                "killed runs marked abandoned (by the next run of the sync)",
                f"{sum(len(o.abandoned) for o in killed)} / {len(killed)}",
            ),
            (
                "PostgreSQL deadlocks in opposite-order state flushes (5 x 2,000 keys)",
                "-" if self.deadlocks is None else str(self.deadlocks),
            ),
            ("lost updates", str(lost)),
            ("duplicated records", str(dup)),
            ("audit violations (terminal outcomes per record per run)", str(audit)),
            ("bad-input classes handled", f"{handled} / {len(self.bad_input)}"),
        ]


def _crash_sum(crash: CrashLoopResult | None, name: str) -> int:
    return sum(getattr(c, name) for c in crash.crashes) if crash else 0


def _pg_ready() -> bool:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def run_faults(sizes: Sizes, workdir: Path, pg: bool, say: Any) -> list[FaultResult]:
    """Every scenario for every seed; ``mixed`` on PostgreSQL when it is reachable."""
    results = []
    for seed in sizes.fault_seeds:
        for name, scenario in SCENARIOS.items():
            with contextlib.ExitStack() as stack:
                url, schema = f"sqlite:///{workdir / f'faults-{name}-{seed}.db'}", None
                if name == "mixed" and pg:
                    # Owned by this process: dropped at the end, or swept by the test suite
                    # if this process is killed first.
                    url, schema = PG_URL, stack.enter_context(owned_schema(PG_URL))
                result = fault_run(
                    scenario,
                    seed=seed,
                    records=sizes.fault_records,
                    rounds=sizes.fault_rounds,
                    warehouse_url=url,
                    state_schema=schema,
                )
            verdicts = " | ".join(v.summary() for v in result.verdicts)
            say(
                f"  {name:<13} seed {seed:<4} {result.warehouse:<10} {result.changes:>5} changes "
                f"{result.runs:>2} runs  faults {dict(result.faults)}  "
                f"{'ok' if result.ok else 'BROKEN: ' + verdicts}  {result.seconds:.1f}s"
            )
            results.append(result)
    return results


def run_overlap(sizes: Sizes, workdir: Path, pg: bool, say: Any) -> list[OverlapResult]:
    """Two processes of one sync at every moment, waiting or not, on each warehouse."""
    results = []
    warehouses = ["sqlite", "postgresql"] if pg else ["sqlite"]
    for warehouse in warehouses:
        for wait in sizes.overlap_waits:
            for moment in sizes.overlap_moments:
                name = f"overlap-{warehouse}-{moment}-{'wait' if wait else 'busy'}"
                with contextlib.ExitStack() as stack:
                    url, schema = f"sqlite:///{workdir / f'{name}.db'}", None
                    if warehouse == "postgresql":
                        url, schema = PG_URL, stack.enter_context(owned_schema(PG_URL))
                    result = overlap_run(
                        workdir / name,
                        warehouse_url=url,
                        state_schema=schema,
                        moment=moment,
                        wait=wait,
                        rows=sizes.overlap_rows,
                    )
                say(
                    f"  {warehouse:<10} {moment:<7} {'waits' if wait else 'busy '}  exits "
                    f"{result.exits}  stale {len(result.stale)}  abandoned "
                    f"{len(result.abandoned)}  {'ok' if result.ok else 'BROKEN'}  "
                    f"{result.seconds:.1f}s"
                )
                results.append(result)
    return results


def run_deadlocks() -> int:
    """Opposite-order flushes of the same state rows on PostgreSQL: failures (deadlocks)."""
    from kizen_sync.warehouse import Warehouse

    with owned_schema(PG_URL) as schema:
        warehouse = Warehouse(PG_URL, state_schema=schema)
        try:
            return flush_deadlocks(warehouse, rounds=5, keys=2000)
        finally:
            warehouse.dispose()


def run_bad_input(say: Any) -> list[BadInputOutcome]:
    """Every catalogue case in a fresh lab."""
    outcomes = []
    for case in CATALOGUE:
        try:
            run_case(case)
            outcomes.append(BadInputOutcome(case, True))
        except Exception as exc:  # report every broken case, not just the first
            detail = "".join(traceback.format_exception_only(exc)).strip()
            outcomes.append(BadInputOutcome(case, False, detail))
            say(f"  BROKEN {case.name}: {detail[:300]}")
    return outcomes


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _faults_table(report: Report) -> str:
    rows = [
        [
            f.scenario,
            f.seed,
            f.warehouse,
            f.records,
            f.changes,
            f.runs,
            f.next_run_retries,
            f.requests,
            ", ".join(f"{k} {v}" for k, v in sorted(f.faults.items())) or "-",
            f.retry_rows,
            f.lost,
            f.duplicated,
            f.audit_problems,
            f"{f.seconds:.1f}",
        ]
        for f in report.faults
    ]
    return _table(
        [
            "scenario",
            "seed",
            "warehouse",
            "records",
            "changes",
            "runs",
            "next runs",
            "requests",
            "faults injected",
            "retried attempts",
            "lost",
            "dup",
            "audit",
            "s",
        ],
        rows,
    )


def _crash_table(crash: CrashLoopResult) -> str:
    rows = [
        [
            c.index + 1,
            str(c.point),
            c.writes_before_kill,
            c.applied,
            c.confirmed,
            c.resent,
            c.confirmed_resent,
            c.unconfirmed_not_resent,
            "killed" if c.killed else f"ended by itself (exit {c.exit_code})",
        ]
        for c in crash.crashes
    ]
    return _table(
        [
            "#",
            "kill after",
            "writes seen",
            "records applied",
            "confirmed (audit)",
            "re-sent later",
            "confirmed but re-sent",
            "applied, never re-sent",
            "",
        ],
        rows,
    )


def _overlap_table(report: Report) -> str:
    rows = [
        [
            o.warehouse,
            o.moment,
            "waits" if o.wait else "no (exit 3)",
            o.rows,
            o.changes,
            ", ".join(f"{k.upper()} {v}" for k, v in o.exits.items()),
            ", ".join(w.upper() for w in o.waited) or "-",
            len(o.stale),
            len(o.abandoned),
            o.after.summary(),
            f"{o.seconds:.1f}",
        ]
        for o in report.overlap
    ]
    return _table(
        [
            "warehouse",
            "moment",
            "second run waits",
            "rows",
            "changes",
            "exit status",
            "waited",
            "stale",
            "abandoned",
            "after one more run",
            "s",
        ],
        rows,
    )


def _bad_input_table(report: Report) -> str:
    rows = [
        [
            i + 1,
            f"`{b.case.name}`",
            b.case.given,
            b.case.kind,
            b.case.expected,
            "yes" if b.passed else "NO",
        ]
        for i, b in enumerate(report.bad_input)
    ]
    return _table(["#", "class", "input", "kind", "what the user sees", "as expected"], rows)


def render_markdown(report: Report) -> str:
    """RELIABILITY.md: the figures, the method, the seeds and how to reproduce."""
    sizes = report.sizes
    crash = report.crash
    figures = _table(["figure", "value"], [[k, v] for k, v in report.figures()])
    seeds = ", ".join(map(str, sizes.fault_seeds))
    parts = [
        "# Reliability and security figures",
        "",
        f"Generated by `python -m bench.reliability{' --quick' if sizes.name == 'quick' else ''}`"
        f" on {report.started:%Y-%m-%d %H:%M} UTC ({sizes.name} sizes, {report.seconds:.0f} s, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"PostgreSQL {'used' if report.pg else 'not reachable: skipped'}). "
        f"Verdict: **{'all invariants held' if report.ok else 'INVARIANTS BROKEN'}**.",
        "",
        "## Figures",
        "",
        figures,
        "",
        "## Method",
        "",
        "Everything runs on loopback against the Kizen emulator served over real HTTP "
        "(uvicorn), with the connector unmodified. Verification is done from the emulator's "
        "side, never from the connector's own report:",
        "",
        "- **Kizen equals the warehouse.** Each live source row must have exactly one Kizen "
        "record with its identifier (archived records included in the count), live, whose "
        "values read back through `mapping.canonical_from_read` equal the row's values through "
        "`mapping.coerce`; each deleted row's record must be archived. A row whose values "
        "differ is a *lost update*; an identifier held by two records is a *duplicate*.",
        "- **Audit.** For every completed run, every audited record has exactly one terminal "
        "row (`success`/`failed`), it is the last one, every earlier row is `retry`, and the "
        "run audited exactly `planned + noop` records. Killed runs may miss terminal rows but "
        "never have two. Across the killed-and-resumed change run each record succeeds once.",
        "- **Fault runs** (`tests/support/faults.py: fault_run`): sync N contacts "
        "(e-mail identifier, first name, dynamic tags in managed mode, an option field), then "
        "rounds of mixed changes (30 % creates, 30 % scalar updates, 25 % tag add/remove, "
        "15 % deletions). The emulator's fault knobs are on for every run of a round; when a "
        "run leaves failures, the next run starts automatically (at most 10), as the schedule "
        "would. Faults are counted by the emulator's request log (`request_log.faults()`). "
        "Client: 8 in flight, backoff 20 ms-0.5 s, Retry-After honoured (capped at 2 s), "
        "timeout 2 s (0.2 s in the slow scenarios, against 600 ms slow answers). In the 429 "
        "storm (40 requests/s allowed, 8 workers unpaced) every retry after a 429 must have "
        "waited at least the Retry-After (1 s), by the audit's attempt timestamps: ignoring "
        "Retry-After (cap 0 s) gave 1,957 429s instead of about 50 on the same seed.",
        "- **Crash loop** (`tests/support/crash_loop.py: crash_loop`): N contacts are synced "
        "in-process; the source then "
        "gets the change mix above; `kizen-sync run --config ...` (the CLI, in a subprocess) "
        "is killed with SIGKILL at a seeded moment (after a seeded number of writes seen by "
        "the emulator, or a seeded delay from process start, which on this machine often "
        "lands in start-up or planning), started again, killed again, and so on; a last run "
        "goes to the end. The emulator adds 5 ms latency per request so kills land while "
        "requests are in flight. Per crash, the emulator's write journal gives the records "
        "whose write was *applied* before the kill; the audit table gives those the killed run "
        "had *confirmed*; *re-sent* = applied records written again by any later run. The "
        "design says re-sent = applied - confirmed exactly (nothing confirmed is re-sent, "
        "nothing applied is forgotten), bounded by the in-flight window: "
        f"`max_in_flight + 2 x flush batch` = 8 + 2 x {FLUSH_EVERY} = "
        f"{8 + 2 * FLUSH_EVERY} (the batch being committed plus the one filling up).",
        "- **Overlapping runs** (`tests/support/overlap.py: overlap_run`): two `kizen-sync "
        "run` processes (A, B) of one contacts sync, each through its own gate in front of the "
        "emulator: A's gate holds A's write requests, B's holds the answers to B's writes "
        "(applied, not heard back). The source changes (mixed changes plus a new first name "
        "for every row) before A starts and again before B starts, at the *moment* named: "
        "`start` (B right after A was launched: either may take the sync), `apply` (A holds "
        "the sync and its first writes are held), `after` (A finished), `killed` (as `apply`, "
        "then A gets SIGKILL and its held writes are lost). B either waits for the lease "
        "(`--wait 600`) or not (exit 3; a third run does the work). Every wait is on something "
        "observable (a held request, a line a process printed, an exit), never a sleep. "
        "*Stale values* are records whose Kizen values differ from the source although no "
        "diff would find them (the state says they are in step): the values no later run "
        "repairs. Without the lease the same scenario (`apply`, no wait) left 4 of 60 "
        "records stale on SQLite and 1 on PostgreSQL. The deadlock figure runs two state "
        "flushes of the same 2,000 keys in opposite orders, started together, 5 times "
        "(before key-ordered flushes: 5 of 5 deadlocks).",
        "- **Bad input** (`tests/support/bad_input/`): each class builds its situation "
        "against the in-process emulator and a SQLite warehouse, first syncing good rows, and "
        "asserts what the user sees (message names the row key, column and field, or the "
        "config key) and that nothing already synced is lost.",
        "- **Secrets** (`tests/reliability/test_secrets.py`, not re-run here): a canary API key "
        "is searched for in every log record of every logger at DEBUG (httpx, httpcore "
        "included), in 401 and transport exceptions with their tracebacks, in the CLI's output "
        "with `--verbose`, in every Dagster event of a successful and a failed materialization "
        "of `kizen/contacts`, and in every row of every table and view of the warehouse; TLS "
        "verification is on by default and turning it off logs a WARNING; table and column "
        "names with injection attempts are refused by the sync-file check and again by "
        "`Source` with no statement carrying them (SQLAlchemy `before_cursor_execute` spy, "
        "SQLite and PostgreSQL); fields marked `sensitive` appear in the audit table only as "
        "`[redacted]` and inside the HMAC-SHA256 `values_hash`.",
        "",
        "## Seeds and how to reproduce",
        "",
        f"- Fault runs: seeds {seeds} (the emulator's fault generator is reseeded with "
        "`seed * 1000 + round`), "
        f"{sizes.fault_records} records, {sizes.fault_rounds} rounds per run.",
        f"- Crash loop: seed {sizes.crash_seed}, {sizes.crash_base_rows} rows synced first, "
        f"{sizes.crash_changes} changes, {sizes.crashes} kills.",
        "- Reproduce: `python -m bench.reliability` (full, writes this file) or "
        "`python -m bench.reliability --quick --out /tmp/r.md`; one scenario: "
        '`python -c "from tests.support.faults import *; '
        "print(fault_run(SCENARIOS['drops'], seed=101, records=500, rounds=3, "
        "warehouse_url='sqlite:////tmp/w.db').ok)\"`.",
        "- CI runs the reduced set in `tests/reliability` (about 90 s): each fault scenario "
        "once on 200 records, 3 kills on 300 changes, two overlap scenarios (PostgreSQL "
        "waiting, SQLite exit 3), every bad-input class, every secrets check; the full kill "
        "loop is `slow` and runs with `KIZEN_SYNC_RELIABILITY_FULL=1`.",
        "",
        "## Fault runs",
        "",
        _faults_table(report),
        "",
    ]
    parts += [
        "## What a run never does, and what checks it",
        "",
        "Every case below ends with Kizen equal to the source, read back from the emulator: "
        "no stale value, no record archived or written that should not be, no duplicate, and "
        "every refused row listed (`kizen-sync failures`) with a reason that names it.",
        "",
        "- **Two runs of one sync at once.** Every `run`/`retry` holds the sync's lease in the "
        "warehouse (`kizen_sync/warehouse/lease.py`: a PostgreSQL advisory lock on a connection "
        "kept for the run; elsewhere a `kizen_sync_leases` row with a heartbeat, an expiry on "
        "the database's clock, and takeover when the holder's process is gone from the same "
        "machine). A second run waits `--wait` seconds or exits 3 naming the holder and since "
        "when; the next holder marks runs left `running` as `abandoned`; a run that lost its "
        "lease stops sending and its state flushes are refused (fenced in the transaction). "
        "Checked by the overlap table above and `tests/reliability/test_overlap.py` (two "
        "real processes), `tests/warehouse/test_lease.py` (waits, names, expiry, kill -9, "
        "fencing on SQLite and PostgreSQL) and the deadlock figure "
        "(`tests/test_store.py`: flushes lock rows in key order).",
        "- **A source emptied between the plan and the apply.** The guards' budgets are "
        "counted on every op the apply sends (`kizen_sync/engine/budget.py`) and a plan read "
        "twice re-checks the mass-archive guard first; a guard stop exits 2. Checked by "
        "`tests/engine/test_budget.py` (emptied right before the second read: at most the 5 % "
        "budget archived; emptied right after the plan: nothing sent; a mapping broken "
        "between the passes: stopped at the reject budget) and `source_emptied_mid_run` below.",
        "- **Re-keyed rows and identity collisions** (`kizen_sync/engine/resolve.py`). A row "
        "back under a new key with the same identifier is an update of its record and its "
        "state moves (not archive + create); rows Kizen's upsert would resolve to one record "
        "(e-mails equal but for case, one record id twice, an identifier held by another "
        "row's record) all fail naming each other and nothing is sent for them, however many "
        "(they never count against `max_reject_rate`); `plan` shows both as the run sends "
        "them. Checked by "
        "`tests/engine/test_resolve.py` on SQLite and PostgreSQL and the catalogue classes "
        "`re_keyed_table`, `emails_differing_in_case`, `identifier_of_a_synced_row`, "
        "`record_id_in_two_rows`.",
        "- **Damaged state** (`kizen_sync/warehouse/integrity.py`). Two live state rows on "
        "one Kizen id are both refused every run until repaired (the message names the table "
        "and keys to delete), never counted against `max_reject_rate`; a state row that cannot "
        "be read fails its own record; a dropped table is created again by the next run with "
        "a warning (`plan` and `check` name it and write nothing); a lost state row is found "
        "again by its "
        "identifier. Checked by `tests/warehouse/test_integrity.py` on both warehouses and "
        "the classes `state_rows_sharing_a_record`, `corrupt_state_row`, "
        "`dropped_state_table`, `lost_state_row`.",
        "- **Bad bytes** (`kizen_sync/warehouse/unreadable.py`). A SQLite row whose text is "
        "not UTF-8 fails alone naming its column; a PostgreSQL `json` document whose keys come "
        "back in another order is no change, every real change is one, and one `jsonb` "
        "refuses (`\\u0000`) no longer stops the diff. Checked by "
        "`tests/warehouse/test_bad_bytes.py` and the class `invalid_utf8`.",
        "",
    ]
    if report.overlap:
        parts += [
            "## Overlapping runs",
            "",
            "Exit status -9: killed by the harness (moment `killed`); 3: another run holds the "
            "sync. *Waited*: the run printed that it waits for the other's lease.",
            "",
            _overlap_table(report),
            "",
        ]
    if crash is not None:
        parts += [
            "## Crashes",
            "",
            f"Change run: {crash.mix.total} changes ({crash.mix.creates} creates, "
            f"{crash.mix.updates} updates, {crash.mix.tag_changes} tag add/remove, "
            f"{crash.mix.archives} archives) over {crash.base_rows} synced rows; "
            f"max_in_flight {crash.max_in_flight}, emulator latency {crash.latency_ms:g} ms; "
            f"final run exit status {crash.final_exit}; {crash.writes_total} record writes in "
            f"all; {crash.seconds:.0f} s.",
            "",
            _crash_table(crash),
            "",
        ]
    parts += [
        "## Bad input",
        "",
        "Kinds: *error before any write* (the run stops with one error, the emulator saw no "
        "write, everything synced before is intact); *record fails* (that row fails with the "
        "message shown in the run report, the audit table and `kizen-sync failures`, the other "
        "rows of the run are written, the record keeps its previous values); *synced* "
        "(unusual but valid input arrives exactly).",
        "",
        _bad_input_table(report),
        "",
        "## Known limits",
        "",
        "- A float NaN (pandas' missing marker) is treated as NULL, so with `null: clear` it "
        "clears the field in Kizen; a numeric NaN (`Decimal('NaN')`, PostgreSQL `numeric`, "
        "text `'NaN'`) is refused per record.",
        "- The state table keeps the last synced values (`values_json`) in plain text for "
        "every field, sensitive ones included (they already live in the same warehouse); only "
        "the audit table hashes them.",
        "- `source.query` is SQL written by whoever writes the sync file and runs as given; "
        "names (tables, columns, schema, prefix) are what is checked.",
        "- One run per sync at a time is enforced by the lease in the warehouse, but Kizen "
        "itself cannot check it: a write a killed (or lease-less, stalled past `ttl_s`) run "
        "had already handed to Kizen, and that Kizen applies after the next run's write to "
        "the same record, would still win. The run checks its lease before every request "
        "and stops sending once it has gone unconfirmed for `ttl_s / 2`; the overlap runs "
        "here lose a killed run's in-flight writes rather than apply them late.",
        "- Identity collisions are judged as Kizen's upsert matches identifiers (case "
        "folded); two e-mails Kizen would tell apart by something else are not caught "
        "before the write.",
        "",
    ]
    return "\n".join(parts)


def to_json(report: Report) -> dict[str, Any]:
    """Machine-readable figures."""
    crash = report.crash
    return {
        "sizes": report.sizes.name,
        "ok": report.ok,
        "seconds": report.seconds,
        "figures": dict(report.figures()),
        "faults": [
            {
                "scenario": f.scenario,
                "seed": f.seed,
                "warehouse": f.warehouse,
                "changes": f.changes,
                "runs": f.runs,
                "faults": dict(f.faults),
                "lost": f.lost,
                "duplicated": f.duplicated,
                "audit": f.audit_problems,
            }
            for f in report.faults
        ],
        "crashes": (
            [
                {
                    "point": str(c.point),
                    "applied": c.applied,
                    "confirmed": c.confirmed,
                    "resent": c.resent,
                    "killed": c.killed,
                }
                for c in crash.crashes
            ]
            if crash
            else []
        ),
        "bad_input": {b.case.name: b.passed for b in report.bad_input},
        "overlap": [
            {
                "warehouse": o.warehouse,
                "moment": o.moment,
                "wait": o.wait,
                "exits": o.exits,
                "stale": len(o.stale),
                "abandoned": len(o.abandoned),
                "ok": o.ok,
            }
            for o in report.overlap
        ],
        "deadlocks": report.deadlocks,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the figures, write the report; 1 when an invariant broke."""
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI sizes (about a minute)")
    parser.add_argument(
        "--out",
        type=Path,
        help="Markdown report (default: RELIABILITY.md for a full run, none for --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--skip-crash", action="store_true", help="no kill -9 loop")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    out = args.out or (None if args.quick else ROOT / "RELIABILITY.md")

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    report = Report(sizes, datetime.now(UTC), pg=_pg_ready())
    with tempfile.TemporaryDirectory(prefix="kizen-reliability-") as tmp:
        workdir = Path(tmp)
        say(
            f"fault runs ({sizes.name}: seeds {sizes.fault_seeds}, {sizes.fault_records} "
            f"records, {sizes.fault_rounds} rounds)"
        )
        report.faults = run_faults(sizes, workdir, report.pg, say)
        if not args.skip_crash:
            say(
                f"kill -9 loop (seed {sizes.crash_seed}, {sizes.crash_changes} changes, "
                f"{sizes.crashes} kills)"
            )
            report.crash = crash_loop(
                workdir / "crash",
                seed=sizes.crash_seed,
                base_rows=sizes.crash_base_rows,
                changes=sizes.crash_changes,
                crashes=sizes.crashes,
            )
            low, mid, high = report.crash.resent_stats()
            say(
                f"  {len(report.crash.resent)} kills, re-sent min/median/max {low}/{mid:g}/{high},"
                f" {report.crash.verdict.summary()}, {report.crash.seconds:.0f}s"
            )
        say(
            f"overlapping runs ({', '.join(sizes.overlap_moments)}; "
            f"{'waiting or not' if len(sizes.overlap_waits) > 1 else 'waiting'})"
        )
        report.overlap = run_overlap(sizes, workdir, report.pg, say)
        if report.pg:
            report.deadlocks = run_deadlocks()
            say(f"  PostgreSQL opposite-order flushes: {report.deadlocks} deadlock(s)")
        say(f"bad input ({len(CATALOGUE)} classes)")
        report.bad_input = run_bad_input(say)
    report.seconds = time.monotonic() - started
    width = max(len(k) for k, _ in report.figures())
    say("")
    for key, value in report.figures():
        say(f"{key:<{width}}  {value}")
    say(
        f"verdict: {'all invariants held' if report.ok else 'INVARIANTS BROKEN'}"
        f" ({report.seconds:.0f} s)"
    )
    if out is not None:
        out.write_text(render_markdown(report), encoding="utf-8")
        say(f"wrote {out}")
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(report), indent=2), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
