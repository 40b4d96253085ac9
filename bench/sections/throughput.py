"""Part 1: apply throughput against the emulator's rate limit, engine and client alone.

For each R: N = R x ~10 s records are seeded in the emulator (fixed ids), a warehouse table of
N rows points at them through its ``kizen_id`` column, and one ``SyncRunner.run`` (update
mode, first run: every row is new, so every record gets one PATCH by id) is made with
``requests_per_second=R`` on the client, against ``python -m kizen_sync.emulator
--latency-ms 20 --rate-limit R`` in its own process. Then the client alone PATCHes the same
records (the old ``bench/client_throughput.py``), after the server's one-second window reset.

Figures: updates/s over the apply window (first to last applied record) and over the whole
run, divided by R; 429 share from the emulator's own request log; CPU ms per request of the
worker process (its ``process_time`` over the run / requests it sent) and of the emulator.
In-flight cap per R: ceil(R x latency x 1.5) (Little's law with 50 % slack), 4..32.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench import fixtures
from bench.context import Context
from bench.proc import EmulatorProcess, start_emulator
from bench.report import Section, Target

__all__ = ["NAME", "run"]

NAME = "throughput"
MAX_IN_FLIGHT = 32


def in_flight_for(rate: float | None, latency_ms: float) -> int:
    """Requests in flight needed to reach ``rate`` at ``latency_ms`` with 50 % slack."""
    if rate is None:
        return MAX_IN_FLIGHT
    return max(4, min(MAX_IN_FLIGHT, math.ceil(rate * latency_ms / 1000 * 1.5)))


def _log_totals(emu: EmulatorProcess) -> tuple[int, int]:
    counts = emu.request_counts()
    total = sum(c["count"] for c in counts)
    limited = sum(c["count"] for c in counts if c["status"] == 429)
    return total, limited


def _row(
    what: str,
    rate: float | None,
    rows: int,
    in_flight: int,
    result: dict[str, Any],
    emu_total: int,
    limited: int,
    emu_cpu: float,
) -> dict[str, Any]:
    applied = result["applied"]
    steady = result.get("apply_rate")
    whole = applied / result["wall_s"] if result["wall_s"] else None
    return {
        "setting": f"{what}, R={'none' if rate is None else f'{rate:g}'}",
        "rows": rows,
        "in_flight": in_flight,
        "applied": applied,
        "steady_rate": steady,
        "steady_share": steady / rate if rate and steady else None,
        "run_rate": whole,
        "run_share": whole / rate if rate and whole else None,
        "requests": emu_total,
        "pct_429": 100 * limited / emu_total if emu_total else 0.0,
        "cpu_ms": 1000 * result["cpu_s"] / emu_total if emu_total else None,
        "emu_cpu_ms": 1000 * emu_cpu / emu_total if emu_total else None,
        "peak_rss_mib": result.get("peak_rss_mib"),
    }


def _measure_rate(ctx: Context, index: int, rate: float | None) -> list[dict[str, Any]]:
    sizes = ctx.sizes
    rows = sizes.rows_for(rate)
    in_flight = in_flight_for(rate, sizes.latency_ms)
    table = f"tp_{index}"
    fixtures.create_accounts(ctx.pg_url, table, rows)
    state = fixtures.seed_emulator(ctx.tmp / f"tp_{index}.db", rows)
    project = fixtures.project_dict(ctx.pg_url, [fixtures.sync_dict(table, name=table)])
    timeout = 120 + 3 * rows / (rate or 200)
    out = []
    with start_emulator(latency_ms=sizes.latency_ms, rate_limit=rate, state=state) as emu:
        base = {"base_url": emu.base_url, "rate": rate, "in_flight": in_flight}
        emu.reset_log()
        cpu0 = emu.cpu_s()
        result = ctx.worker(
            "runner_run", {**base, "project": project, "sync": table}, timeout_s=timeout
        )
        total, limited = _log_totals(emu)
        out.append(
            _row(
                "kizen-sync run", rate, rows, in_flight, result, total, limited, emu.cpu_s() - cpu0
            )
        )
        if result["status"] != "success":
            out[-1]["setting"] += f" ({result['status']}: {result['message'][:60]})"
        if sizes.client_only:
            time.sleep(1.2)  # let the emulator's one-second window forget the run
            emu.reset_log()
            cpu0 = emu.cpu_s()
            result = ctx.worker("client_patch", {**base, "rows": rows}, timeout_s=timeout)
            total, limited = _log_totals(emu)
            out.append(
                _row(
                    "client alone",
                    rate,
                    rows,
                    in_flight,
                    result,
                    total,
                    limited,
                    emu.cpu_s() - cpu0,
                )
            )
    fixtures.drop_table(ctx.pg_url, table)
    return out


def run(ctx: Context) -> Section:
    """Measure every rate of ``ctx.sizes``; judge G1/G2 (>= 0.93 R, <= 0.1 % 429s, >= 800/s)."""
    section = Section(
        name=NAME,
        title=f"1. Apply throughput vs the rate limit R ({ctx.sizes.latency_ms:g} ms latency)",
        columns=[
            ("setting", "setting"),
            ("rows", "N"),
            ("in_flight", "in flight"),
            ("steady_rate", "updates/s (apply)"),
            ("steady_share", "/ R"),
            ("run_rate", "updates/s (run)"),
            ("run_share", "run / R"),
            ("requests", "requests"),
            ("pct_429", "429 %"),
            ("cpu_ms", "CPU ms/req"),
            ("emu_cpu_ms", "emulator CPU ms/req"),
            ("peak_rss_mib", "peak RSS MiB"),
        ],
        notes=[
            "apply = first to last applied record; run = whole SyncRunner.run (diff, schema "
            "read, plan, apply, state flush); requests and 429s from the emulator's log.",
            "CPU ms/req: process_time of the measuring process / requests; the emulator runs in "
            "its own process (its CPU shown separately).",
        ],
    )
    for index, rate in enumerate(ctx.sizes.rates):
        ctx.say(f"throughput: R={rate or 'none'}")
        section.rows.extend(_measure_rate(ctx, index, rate))
    for row in section.rows:
        if not row["setting"].startswith("kizen-sync"):
            continue
        rate_text = row["setting"].split("R=")[1]
        if rate_text.startswith("none"):
            rate_val = row["steady_rate"] or 0.0
            section.targets.append(
                Target("no limit: >= 800 updates/s", f"{rate_val:,.0f} updates/s", rate_val >= 800)
            )
        else:
            share = row["steady_share"] or 0.0
            pct = row["pct_429"]
            section.targets.append(
                Target(
                    f"R={rate_text}: >= 0.93 R, <= 0.1 % 429s",
                    f"{share:.3f} R, {pct:.2f} % 429s",
                    share >= 0.93 and pct <= 0.1,
                )
            )
    return section
