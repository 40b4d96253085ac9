"""Part 2: requests per changed record, from the emulator's own request log.

An update by record id must cost exactly one request (the PATCH). Everything else a run sends
is counted separately and attributed either to the run (schema discovery, dynamic-tag
listing: paid once however many records change) or to each record (reads of the current
values in mirror mode, field-values pages, lookups by name before the id is remembered).

Configurations, all on the same N-row table and the same seeded records, each with its own
sync state: by id with eight scalar fields; plus a dynamic-tags field; plus a multi-valued
field in mirror mode; by name (lookups). Then 5 % of rows are edited and 2 % deleted, and the
by-id and by-name syncs run again (incremental: PATCH per edit, DELETE per deletion).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import create_engine, text

from bench import fixtures
from bench.context import Context
from bench.proc import EmulatorProcess, start_emulator
from bench.report import Section, Target

__all__ = ["NAME", "run"]

NAME = "requests"
PER_RUN = ("schema", "schema fields", "tag listing", "object list")


def route_kind(method: str, route: str) -> str:
    """A short name for one (method, route template) of the emulator's log."""
    if route.endswith("/tags"):  # /api/pipelines/{object}/fields/... or /api/client/fields/...
        return "tag listing"
    if route.startswith("/api/custom-objects"):
        if route.endswith("/fields"):
            return "schema fields"
        return "object list" if route == "/api/custom-objects" else "schema"
    if "/field-values/" in route:
        return "field-values page"
    if route.endswith("/lookup"):
        return "lookup"
    if route.endswith("/upsert"):
        return "upsert"
    if route.endswith("/unarchive"):
        return "unarchive"
    if route.endswith("/search"):
        return "search"
    if route.endswith("{entity_id}"):
        return {"PATCH": "PATCH", "DELETE": "DELETE", "GET": "GET record", "PUT": "PUT"}.get(
            method, f"{method} record"
        )
    return f"{method} {route}"


WRITES = ("PATCH", "DELETE", "upsert", "PUT")


def _add_multi_columns(url: str, table: str) -> None:
    """Text columns for a dynamic-tags field (labels) and a checkboxes field (products)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN labels text"))
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN products text"))
            conn.execute(
                text(
                    f"UPDATE {table} SET labels = CASE WHEN id % 2 = 0 THEN 'Strategic,Renewal'"
                    " ELSE 'At Risk' END, products = CASE WHEN id % 3 = 0 THEN 'Core,Analytics'"
                    " ELSE 'Support' END"
                )
            )
    finally:
        engine.dispose()


def _configs(table: str) -> dict[str, dict[str, Any]]:
    base = fixtures.sync_dict(table, name="rq_id")
    labels = {"column": "labels", "field": "labels", "format": "delimited"}
    products = {
        "column": "products",
        "field": "products",
        "format": "delimited",
        "multi_mode": "mirror",
    }
    return {
        "rq_id": base,
        "rq_tags": {**base, "name": "rq_tags", "fields": [*base["fields"], labels]},
        "rq_mirror": {**base, "name": "rq_mirror", "fields": [*base["fields"], products]},
        "rq_name": {**base, "name": "rq_name", "identity": {"match_on": "name"}},
    }


def _measure(
    ctx: Context, emu: EmulatorProcess, project: dict[str, Any], sync: str, label: str
) -> dict[str, Any]:
    emu.reset_log()
    result = ctx.worker(
        "runner_run",
        {"project": project, "sync": sync, "base_url": emu.base_url, "in_flight": 16},
        timeout_s=300,
    )
    by_kind: Counter[str] = Counter()
    for entry in emu.request_counts():
        by_kind[route_kind(entry["method"], entry["route"])] += entry["count"]
    changed = result["planned"]
    writes = sum(by_kind[k] for k in WRITES)
    per_record = {k: n for k, n in by_kind.items() if k not in WRITES and k not in PER_RUN}
    per_run = {k: n for k, n in by_kind.items() if k in PER_RUN}
    return {
        "setting": label,
        "changed": changed,
        "writes": writes,
        "writes_per_record": writes / changed if changed else None,
        "per_record_extra": ", ".join(
            f"{k} {n / changed:.2f}" for k, n in sorted(per_record.items())
        )
        if changed and per_record
        else "none",
        "per_run_extra": ", ".join(f"{k} {n}" for k, n in sorted(per_run.items())) or "none",
        "total": sum(by_kind.values()),
        "failed": result["counts"]["failed"],
        "routes": dict(by_kind),
    }


def run(ctx: Context) -> Section:
    """Run each configuration once (and two again after churn); count requests per route."""
    rows = ctx.sizes.request_rows
    table = "rq_src"
    fixtures.create_accounts(ctx.pg_url, table, rows)
    _add_multi_columns(ctx.pg_url, table)
    state = fixtures.seed_emulator(ctx.tmp / "rq.db", rows)
    configs = _configs(table)
    project = fixtures.project_dict(ctx.pg_url, list(configs.values()))
    section = Section(
        name=NAME,
        title="2. Requests per changed record (emulator request log)",
        columns=[
            ("setting", "configuration"),
            ("changed", "changed records"),
            ("writes", "writes"),
            ("writes_per_record", "writes / record"),
            ("per_record_extra", "extra calls per record"),
            ("per_run_extra", "extra calls per run"),
            ("total", "all requests"),
            ("failed", "failed"),
        ],
        notes=[
            f"{rows} rows; emulator at 0 ms latency, no limit (counts do not depend on timing).",
            "writes = PATCH + DELETE + upsert; per-run calls are paid once however many "
            "records change.",
            "verify: none. By default a sync's runs read back the first 10 written records "
            "and 5 % of the rest (one GET each) until one of its runs succeeds.",
        ],
    )
    labels = {
        "rq_id": "by id, 8 scalar fields, first run",
        "rq_tags": "by id, + dynamic-tags field (managed)",
        "rq_mirror": "by id, + checkboxes field in mirror mode",
        "rq_name": "by name (match_on), first run",
    }
    with start_emulator(latency_ms=0, state=state) as emu:
        for sync, label in labels.items():
            ctx.say(f"requests: {label}")
            section.rows.append(_measure(ctx, emu, project, sync, label))
        churn = fixtures.Churn(update_every=20, delete_every=50)
        churn.apply(ctx.pg_url, table, rows)
        for sync, label in (
            ("rq_id", "by id, incremental: 5 % edited, 2 % deleted"),
            ("rq_name", "by name, incremental: same churn"),
        ):
            ctx.say(f"requests: {label}")
            section.rows.append(_measure(ctx, emu, project, sync, label))
    fixtures.drop_table(ctx.pg_url, table)
    section.extra["routes"] = {r["setting"]: r.pop("routes") for r in section.rows}
    first = section.rows[0]
    section.targets.append(
        Target(
            "update by id: exactly 1 request per changed record",
            f"{first['writes_per_record']:.2f} writes/record, extra per record: "
            f"{first['per_record_extra']}; per run: {first['per_run_extra']}",
            first["writes_per_record"] == 1.0 and first["per_record_extra"] == "none",
        )
    )
    return section
