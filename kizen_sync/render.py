"""Tables for people: run summaries, plans and failures, as rich renderables.

The CLI prints them and the demo reuses them; nothing here runs a sync or parses options, so
that neither imports the other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from kizen_sync.failure_groups import FailureGroup
from kizen_sync.mapping.labels import LabelMap, change_text
from kizen_sync.models import Operation, PlannedOp, RunReport
from kizen_sync.preflight.results import CheckReport, Status

__all__ = [
    "PIPED_WIDTH",
    "check_table",
    "failure_groups_table",
    "failures_table",
    "make_console",
    "open_failures_table",
    "plan_counts_table",
    "plan_table",
    "summary_table",
]

#: Width of tables when output is not a terminal (CI logs, a pipe): rich would use 80 columns
#: and cut the summary tables' headers; ``COLUMNS`` still wins.
PIPED_WIDTH = 120


def make_console(**kwargs: Any) -> Console:
    """A rich console that stays readable when piped (see :data:`PIPED_WIDTH`)."""
    console = Console(**kwargs)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


def _short(value: Any, width: int = 60) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_table(reports: Sequence[RunReport], title: str = "Sync results") -> Table:
    """One row per run: counts, requests and status."""
    table = Table(title=title, title_justify="left")
    table.add_column("sync")
    for name in ("created", "updated", "archived", "unchanged", "failed", "requests"):
        table.add_column(name, justify="right")
    table.add_column("status")
    for r in reports:
        c = r.counts
        style = {"success": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(
            r.sync,
            str(c.created),
            str(c.updated),
            str(c.archived),
            str(c.unchanged),
            str(c.failed),
            str(r.requests),
            f"[{style}]{r.status}[/]",
        )
    return table


def failures_table(reports: Sequence[RunReport]) -> Table | None:
    """The sample of failed records of these runs, or ``None`` when there are none."""
    rows = [(r.sync, f) for r in reports for f in r.failures]
    if not rows:
        return None
    keys = [str(f["source_key"]) for _, f in rows]
    ids = [str(f.get("kizen_id") or "-") for _, f in rows]
    table = Table(title="Failed records (sample)", title_justify="left")
    table.add_column("sync", no_wrap=True)
    _whole(table, "source key", keys)
    _whole(table, "Kizen id", ids)
    for name in ("error", "message"):
        table.add_column(name, overflow="fold")
    for (sync, f), key, kizen_id in zip(rows, keys, ids, strict=True):
        table.add_row(
            sync,
            key,
            kizen_id,
            str(f.get("error_class") or "-"),
            _short(f.get("message"), 120),
        )
    return table


def plan_table(sync: str, ops: Sequence[PlannedOp], labels: LabelMap | None = None) -> Table:
    """Per-record field changes of a dry run.

    Args:
        sync: the sync's name (title).
        ops: the planned ops to show.
        labels: option and tag labels by field and id (``RunReport.labels``); the plan holds
            ids, which mean nothing to the person reading it.
    """
    ids = [op.kizen_id or ("(by identifier)" if op.identifier else "-") for op in ops]
    table = Table(title=f"Planned changes: {sync}", title_justify="left")
    _whole(table, "source key", [op.source_key for op in ops])
    table.add_column("operation", no_wrap=True)
    _whole(table, "Kizen id", ids)
    table.add_column("field", overflow="fold")
    table.add_column("change", overflow="fold", min_width=20, ratio=1)
    for op, kizen_id in zip(ops, ids, strict=True):
        if op.op is Operation.FAIL:
            table.add_row(op.source_key, "[red]fail[/]", kizen_id, "", str(op.error))
            continue
        if not op.changes:
            table.add_row(op.source_key, op.op.value, kizen_id, "", "")
            continue
        for i, change in enumerate(op.changes):
            first = i == 0
            table.add_row(
                op.source_key if first else "",
                op.op.value if first else "",
                kizen_id if first else "",
                change.field,
                change_text(change, labels),
            )
    return table


def plan_counts_table(reports: Sequence[RunReport]) -> Table:
    """One row per dry run: what it would create, update, archive, refresh and reject."""
    table = Table(title="Plan (dry run: nothing sent, nothing stored)", title_justify="left")
    table.add_column("sync")
    for name in ("create", "update", "archive", "noop", "reject", "unchanged"):
        table.add_column(name, justify="right")
    for r in reports:
        c = r.counts
        table.add_row(
            r.sync,
            *(str(n) for n in (c.created, c.updated, c.archived, c.noop, c.failed, c.unchanged)),
        )
    return table


def _age(seconds: Any) -> str:
    """``3d``, ``5h``, ``12m`` or ``40s`` from a number of seconds."""
    if seconds is None:
        return "-"
    whole = max(0, int(float(seconds)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _field_messages(value: Any) -> str:
    """The audit's ``{field: [message, ...]}`` (JSON text) as one line per field."""
    if not value:
        return ""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if not isinstance(parsed, dict):
        return str(parsed)
    return "\n".join(
        f"{field}: {'; '.join(map(str, msgs if isinstance(msgs, list) else [msgs]))}"
        for field, msgs in parsed.items()
    )


def _whole(table: Table, name: str, values: Sequence[str]) -> None:
    """A column whose values are never wrapped nor cut: ids and keys must stay copyable."""
    width = max([len(name), *(len(v) for v in values)])
    table.add_column(name, no_wrap=True, min_width=width, overflow="ignore")


def open_failures_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Open failures (rows of :meth:`Failures.listing`, or of the ``open_failures`` view).

    One record per row: its source key above its Kizen id, both never wrapped nor cut (they
    are copied into queries), then whether it is parked and for how long it has been open,
    then the problem (error class, message, and Kizen's per-field messages when they add to
    the message), which takes whatever width is left.
    """
    keys = [str(row.get("source_key")) for row in rows]
    ids = [str(row.get("kizen_id") or "-") for row in rows]
    table = Table(title=f"Open failures ({len(rows)})", title_justify="left", show_lines=True)
    table.add_column("sync", no_wrap=True)
    _whole(table, "source key / Kizen id", [*keys, *ids])
    table.add_column("state", no_wrap=True, min_width=8)
    table.add_column("problem", overflow="fold", min_width=20, ratio=1)
    for row, key, kizen_id in zip(rows, keys, ids, strict=True):
        parked = row.get("parked")
        state = "failed" if parked is None else ("parked" if parked else "retrying")
        message = str(row.get("error_message") or "")
        extra = _field_messages(row.get("field_errors"))
        problem = f"{row.get('error_class') or 'Error'}: {_short(message, 240)}"
        if extra and extra.split(": ", 1)[-1] not in message:
            problem += f"\n{extra}"
        table.add_row(
            str(row.get("sync_name")),
            f"{key}\n{kizen_id}",
            f"{state}\n{_age(row.get('open_for_s', row.get('age')))}",
            problem,
        )
    return table


def failure_groups_table(groups: Sequence[FailureGroup]) -> Table:
    """Open failures by reason: how many, how many parked, and one example each."""
    examples = [g.source_keys[0] if g.source_keys else "-" for g in groups]
    table = Table(title="Failures by reason", title_justify="left")
    table.add_column("records", justify="right", no_wrap=True)
    table.add_column("parked", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    _whole(table, "example key", examples)
    table.add_column("example message", overflow="fold")
    for group, example in zip(groups, examples, strict=True):
        table.add_row(
            str(group.count),
            str(group.parked),
            group.reason,
            example,
            _short(group.example, 160),
        )
    return table


_CHECK_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIPPED: "dim",
}


def check_table(report: CheckReport) -> Table:
    """The pre-flight report of ``kizen-sync check``: one row per check, with its fix."""
    from rich.markup import escape

    table = Table(title="Pre-flight check (nothing was written)", title_justify="left")
    for name in ("sync", "area", "check", "status", "detail", "fix"):
        table.add_column(name, overflow="fold")
    for c in report.checks:
        table.add_row(
            c.sync or "-",
            c.area,
            c.check,
            f"[{_CHECK_STYLE[c.status]}]{c.status.value}[/]",
            escape(c.detail),
            escape(c.fix),
        )
    return table
