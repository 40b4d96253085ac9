"""Part 5: kizen-sync beside what people would otherwise use, same data, same emulator.

(a) the hand-written script (:mod:`bench.peers.naive`), (b) a dlt pipeline with a
``@dlt.destination`` sink and an ``updated_at`` cursor (:mod:`bench.peers.dlt_pipeline`),
(c) ``SyncRunner.run`` with the default client settings (16 in flight, no rate limit).
A first sync of ``peer_rows`` rows, then ``peer_churn`` of the rows are edited (``updated_at``
bumped, so the cursor sees them) and each tool runs again. Requests come from the emulator's
log, wall time from each tool's own process; ratios are "tool / kizen-sync".

A third run, not among the issue's targets, shows what a cursor cannot know: ``peer_churn``
more rows are edited and as many are only *touched* (``updated_at`` bumped, no synced value
changed, as when a job rewrites rows or an unsynced column changes). The naive script is left
out of it: it sends every row whatever changed (its incremental figure).
"""

from __future__ import annotations

from typing import Any

from bench import fixtures
from bench.context import Context
from bench.proc import EmulatorProcess, start_emulator
from bench.report import Section, Target

__all__ = ["NAME", "run"]

NAME = "peers"
TABLE = "peer_src"
TOOLS = ("naive script", "dlt pipeline", "kizen-sync")
WRITES = ("PATCH", "PUT", "POST", "DELETE")
#: Run name -> the tools measured in it.
PHASES = {
    "first sync": TOOLS,
    "incremental": TOOLS,
    "edited + touched": TOOLS[1:],
}


def _one(ctx: Context, emu: EmulatorProcess, tool: str, phase: str) -> dict[str, Any]:
    rows = ctx.sizes.peer_rows
    timeout = 120 + rows * (ctx.sizes.peer_latency_ms + 10) / 1000 * 3
    common = {"url": ctx.pg_url, "table": TABLE, "base_url": emu.base_url}
    emu.reset_log()
    if tool == "naive script":
        result = ctx.worker("naive", common, timeout_s=timeout)
    elif tool == "dlt pipeline":
        dlt_dir = {"pipelines_dir": str(ctx.tmp / "dlt"), "pipeline_name": "kizen_bench"}
        result = ctx.worker("dlt", {**common, **dlt_dir}, timeout_s=timeout)
    else:
        project = fixtures.project_dict(ctx.pg_url, [fixtures.sync_dict(TABLE, name="peer")])
        result = ctx.worker(
            "runner_run",
            {"project": project, "sync": "peer", "base_url": emu.base_url},
            timeout_s=timeout,
        )
    counts = emu.request_counts()
    errors = sum(c["count"] for c in counts if c["status"] >= 400)
    return {
        "setting": tool,
        "phase": phase,
        "requests": sum(c["count"] for c in counts),
        "writes": sum(c["count"] for c in counts if c["method"] in WRITES),
        "errors": errors,
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mib": result["peak_rss_mib"],
    }


def run(ctx: Context) -> Section:
    """First sync and incremental run of each tool; ratios to kizen-sync; targets of part 5."""
    rows = ctx.sizes.peer_rows
    fixtures.create_accounts(ctx.pg_url, TABLE, rows)
    state = fixtures.seed_emulator(ctx.tmp / "peers.db", rows)
    section = Section(
        name=NAME,
        title=f"5. Side by side: {rows:,}-row first sync, then {ctx.sizes.peer_churn:.0%} edited "
        f"({ctx.sizes.peer_latency_ms:g} ms emulator latency)",
        columns=[
            ("setting", "tool"),
            ("phase", "run"),
            ("requests", "requests"),
            ("writes", "writes"),
            ("req_ratio", "requests / kizen-sync"),
            ("wall_s", "wall s"),
            ("wall_ratio", "wall / kizen-sync"),
            ("cpu_s", "CPU s"),
            ("errors", "4xx/5xx"),
            ("peak_rss_mib", "peak RSS MiB"),
        ],
        notes=[
            f"Emulator latency {ctx.sizes.peer_latency_ms:g} ms for all three (keeps the naive "
            "script's sequential loop bounded); no rate limit; PostgreSQL warehouse.",
            "naive: one httpx.Client, SELECT every row, one PATCH per row with all 8 fields. "
            "dlt: dlt.sources.incremental('updated_at') pushed into SQL, @dlt.destination sink "
            "PATCHing each item, dlt defaults. kizen-sync: SyncRunner.run, default settings.",
        ],
    )
    with start_emulator(latency_ms=ctx.sizes.peer_latency_ms, state=state) as emu:
        for phase, tools in PHASES.items():
            churn = {
                "incremental": fixtures.Churn.updates,
                "edited + touched": fixtures.Churn.touches,
            }.get(phase)
            if churn is not None:
                edited = churn(ctx.sizes.peer_churn).apply(ctx.pg_url, TABLE, rows)
                section.notes.append(
                    f"{phase}: {edited['updated']} rows edited, {edited['touched']} touched only"
                )
            measured = []
            for tool in tools:
                ctx.say(f"peers: {tool}, {phase}")
                measured.append(_one(ctx, emu, tool, phase))
            ours = measured[-1]
            for row in measured:
                row["req_ratio"] = row["requests"] / ours["requests"] if ours["requests"] else None
                row["wall_ratio"] = row["wall_s"] / ours["wall_s"]
            section.rows.extend(measured)
    fixtures.drop_table(ctx.pg_url, TABLE)
    inc = {r["setting"]: r for r in section.rows if r["phase"] == "incremental"}
    naive, dlt, ours = inc["naive script"], inc["dlt pipeline"], inc["kizen-sync"]
    section.targets += [
        Target(
            "incremental: >= 50x fewer requests than the naive script",
            f"{naive['req_ratio']:.1f}x ({naive['requests']:,} vs {ours['requests']:,})",
            naive["req_ratio"] is not None and naive["req_ratio"] >= 50,
        ),
        Target(
            "incremental: >= 10x less wall time than the naive script",
            f"{naive['wall_ratio']:.1f}x ({naive['wall_s']:.2f} s vs {ours['wall_s']:.2f} s)",
            naive["wall_ratio"] >= 10,
        ),
        Target(
            "incremental: fewer requests than the dlt pipeline",
            f"dlt {dlt['requests']:,} vs kizen-sync {ours['requests']:,} (writes "
            f"{dlt['writes']:,} vs {ours['writes']:,}; kizen-sync reads the object and its "
            "field list once)",
            dlt["requests"] > ours["requests"],
        ),
        Target(
            "incremental: less wall time than the dlt pipeline",
            f"dlt {dlt['wall_s']:.2f} s vs kizen-sync {ours['wall_s']:.2f} s",
            dlt["wall_s"] > ours["wall_s"],
        ),
    ]
    return section
