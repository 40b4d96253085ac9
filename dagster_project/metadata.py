"""Run reports, plans and open failures rendered as Dagster metadata.

Everything a person needs to judge a run without reading code or SQL: the counts as integers
(plottable across materializations), a short markdown summary, a sample of what failed and
the records still failing, with where to look next.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from kizen_sync.config import SyncConfig
from kizen_sync.engine.guards import MIN_REJECTS_FOR_GUARD, GuardReport
from kizen_sync.failure_groups import FailureGroup, failure_reason, group_failures
from kizen_sync.mapping.labels import LabelMap, change_text
from kizen_sync.models import Operation, PlannedOp, RunReport

__all__ = [
    "OPEN_FAILURES_SHOWN",
    "failure_groups_table",
    "failures_metadata",
    "guard_metadata",
    "open_failures_table",
    "plan_metadata",
    "retry_text",
    "run_metadata",
    "top_reasons",
]

#: Open failures listed on each materialization (newest first); the view holds them all.
OPEN_FAILURES_SHOWN = 100
_MESSAGE_CHARS = 300

_OPEN_FAILURE_COLUMNS = (
    dg.TableColumn("reason", "string", description="Error class · field: message pattern."),
    dg.TableColumn("sync", "string"),
    dg.TableColumn("source_key", "string", description="Primary key of the warehouse row."),
    dg.TableColumn("kizen_id", "string", description="Kizen record id, when known."),
    dg.TableColumn("operation", "string", description="create, update or archive."),
    dg.TableColumn("error", "string", description="Error class and Kizen's message."),
    dg.TableColumn("age", "string", description="Time since the record first failed."),
    dg.TableColumn("failed_runs", "int", description="Runs that failed it since its last success."),
)
_GROUP_COLUMNS = (
    dg.TableColumn("reason", "string", description="Error class · field: message pattern."),
    dg.TableColumn("records", "int", description="Open failures with this reason."),
    dg.TableColumn("source_keys", "string", description="Primary keys of the rows (first 20)."),
    dg.TableColumn("kizen_ids", "string", description="Their Kizen record ids, where known."),
    dg.TableColumn("example", "string", description="The full message of the first record."),
)
_FAILURE_COLUMNS = (
    dg.TableColumn("source_key", "string"),
    dg.TableColumn("kizen_id", "string"),
    dg.TableColumn("operation", "string"),
    dg.TableColumn("error", "string"),
)
_PLAN_COLUMNS = (
    dg.TableColumn("operation", "string"),
    dg.TableColumn("source_key", "string"),
    dg.TableColumn("kizen_id", "string"),
    dg.TableColumn(
        "changes",
        "string",
        description="Each field the write would change: before → after, or "
        "+added \N{MINUS SIGN}removed for a multi-valued field.",
    ),
)


def _short(text: Any) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= _MESSAGE_CHARS else value[: _MESSAGE_CHARS - 1] + "…"


def _error(row: Mapping[str, Any], message_key: str) -> str:
    """``ErrorClass: message``, either part left out when missing."""
    parts = [str(row[k]) for k in ("error_class", message_key) if row.get(k)]
    return _short(": ".join(parts))


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return ""
    seconds = max(0, int((now - since).total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def open_failures_table(rows: Iterable[Mapping[str, Any]]) -> dg.TableMetadataValue:
    """Rows of the ``open_failures`` view, grouped by reason: key, Kizen id, error, age."""
    now = datetime.now(UTC)
    listed = list(rows)
    order = {g.reason: i for i, g in enumerate(group_failures(listed))}
    listed.sort(key=lambda row: order[failure_reason(row)])
    records = [
        dg.TableRecord(
            {
                "reason": failure_reason(row),
                "sync": row["sync_name"],
                "source_key": row["source_key"],
                "kizen_id": row.get("kizen_id"),
                "operation": row.get("operation"),
                "error": _error(row, "error_message"),
                "age": _age(row.get("first_failed_at"), now),
                "failed_runs": row.get("failed_runs"),
            }
        )
        for row in listed
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(list(_OPEN_FAILURE_COLUMNS)))


def failure_groups_table(groups: Sequence[FailureGroup]) -> dg.TableMetadataValue:
    """One row per reason: how many records, which ones, and an example message."""
    records = [
        dg.TableRecord(
            {
                "reason": _short(g.reason),
                "records": g.count,
                "source_keys": ", ".join(g.source_keys),
                "kizen_ids": ", ".join(i or "-" for i in g.kizen_ids),
                "example": _short(g.example),
            }
        )
        for g in groups
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(list(_GROUP_COLUMNS)))


def top_reasons(groups: Sequence[FailureGroup], shown: int = 3) -> str:
    """``2 x MappingError · email: ... (keys 7, 12)``, one line per reason, largest first."""
    lines = []
    for g in groups[:shown]:
        keys = ", ".join(g.source_keys[:5]) + (", ..." if g.count > 5 else "")
        lines.append(f"{g.count} x {_short(g.reason)} (source keys {keys})")
    if len(groups) > shown:
        lines.append(f"... and {len(groups) - shown} more reason(s)")
    return "\n".join(lines)


def retry_text(sync: SyncConfig, sync_file: str | None) -> str:
    """How to re-send the open failures now: the Dagster job, and the CLI command."""
    config = f" --config {sync_file}" if sync_file else ""
    return (
        f"Launch job `{sync.name}_retry_failed` (Jobs, {sync.name}_retry_failed, Launch run), or "
        f"run `kizen-sync retry{config} --sync {sync.name}`; list them with "
        f"`kizen-sync failures{config} --sync {sync.name}`."
    )


def failures_metadata(
    sync: SyncConfig, open_failures: Sequence[Mapping[str, Any]], sync_file: str | None
) -> dict[str, Any]:
    """The open failures of a sync, grouped by reason and record by record, and how to retry.

    ``open_failures`` is every open failure (true totals and groups); the record table shows
    the newest :data:`OPEN_FAILURES_SHOWN`.
    """
    groups = group_failures(open_failures)
    metadata: dict[str, Any] = {}
    if open_failures:
        metadata["top_reasons"] = top_reasons(groups)
        metadata["retry"] = dg.MetadataValue.md(retry_text(sync, sync_file))
    return {
        **metadata,
        "open_failures_count": dg.MetadataValue.int(len(open_failures)),
        "open_failures_parked": dg.MetadataValue.int(
            sum(1 for row in open_failures if row.get("parked"))
        ),
        "failure_reasons": failure_groups_table(groups),
        "open_failures": open_failures_table(open_failures[:OPEN_FAILURES_SHOWN]),
    }


def _failures_table(failures: Sequence[Mapping[str, Any]]) -> dg.TableMetadataValue:
    records = [
        dg.TableRecord(
            {
                "source_key": f.get("source_key"),
                "kizen_id": f.get("kizen_id"),
                "operation": f.get("operation"),
                "error": _error(f, "message"),
            }
        )
        for f in failures
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(list(_FAILURE_COLUMNS)))


def _plan_table(ops: Sequence[PlannedOp], labels: LabelMap) -> dg.TableMetadataValue:
    """One row per planned record; changes shown as the CLI shows them (labels, not ids)."""
    records = [
        dg.TableRecord(
            {
                "operation": op.op.value,
                "source_key": op.source_key,
                "kizen_id": op.kizen_id or ("(by identifier)" if op.identifier else ""),
                "changes": _short(
                    str(op.error)
                    if op.op is Operation.FAIL
                    else "; ".join(f"{c.field}: {change_text(c, labels)}" for c in op.changes)
                ),
            }
        )
        for op in ops
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(list(_PLAN_COLUMNS)))


def _counts_row(counts: Mapping[str, int]) -> str:
    head = " | ".join(counts)
    rule = " | ".join("---:" for _ in counts)
    values = " | ".join(str(v) for v in counts.values())
    return f"| {head} |\n| {rule} |\n| {values} |"


def run_metadata(
    report: RunReport,
    sync: SyncConfig,
    open_failures: Sequence[Mapping[str, Any]],
    sync_file: str | None = None,
) -> dict[str, Any]:
    """Metadata of one applied run: counts, summary, failure sample and open failures.

    ``dagster/row_count`` is the number of records Kizen confirmed this run (created,
    updated or archived). The summary says what was written, never what was only planned.
    The counts include ``parked`` (rows skipped because they failed before exactly as they
    are), so that for a backfill partition they add up to the rows it holds.
    """
    counts = {**report.counts.as_dict(), "parked": report.parked}
    written = report.counts.created + report.counts.updated + report.counts.archived
    if report.status == "dry_run":
        done = f"{report.planned} records would be written; nothing was sent."
    else:
        done = (
            f"{written} of {report.planned} planned records written with {report.requests} "
            f"requests; audit rows under run id `{report.run_id}`."
        )
    lines = [
        f"**{sync.name}** ({sync.object}): {report.status}"
        + (f", partition `{report.partition_key}`" if report.partition_key else ""),
        "",
        _counts_row(counts),
        "",
        done,
    ]
    if report.counts.failed:
        lines += [
            "",
            f"{report.counts.failed} record(s) failed ({report.failure_rate:.0%}; the run fails "
            f"above {sync.failure_threshold:.0%}). {retry_text(sync, sync_file)} See "
            "`failure_reasons` and `open_failures`.",
        ]
    if report.message:
        lines += ["", _short(report.message)]
    # Shown in this order on the asset page: what happened and what failed, then the numbers.
    metadata: dict[str, Any] = {
        "summary": dg.MetadataValue.md("\n".join(lines)),
        **failures_metadata(sync, open_failures, sync_file),
        **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
        "dagster/row_count": dg.MetadataValue.int(written),
        "planned": dg.MetadataValue.int(report.planned),
        "requests": dg.MetadataValue.int(report.requests),
        "failure_rate": dg.MetadataValue.float(report.failure_rate),
        "status": report.status,
        "audit_run_id": report.run_id,
    }
    if report.failures:
        metadata["failures_sample"] = _failures_table(report.failures)
    if report.partition_key:
        metadata["partition"] = report.partition_key
    return metadata


def guard_metadata(guard: GuardReport) -> dict[str, Any]:
    """The numbers behind both pre-flight guards."""
    enforced = guard.reject_count >= MIN_REJECTS_FOR_GUARD
    return {
        "reject_guard_enforced": enforced,
        "min_rejects_for_guard": dg.MetadataValue.int(MIN_REJECTS_FOR_GUARD),
        "would_archive": dg.MetadataValue.int(guard.would_archive),
        "synced": dg.MetadataValue.int(guard.synced),
        "archive_fraction": dg.MetadataValue.float(guard.archive_fraction),
        "max_archive_fraction": dg.MetadataValue.float(guard.max_archive_fraction),
        "rejected": dg.MetadataValue.int(guard.reject_count),
        "reject_rate": dg.MetadataValue.float(guard.reject_rate),
        "max_reject_rate": dg.MetadataValue.float(guard.max_reject_rate),
    }


def plan_metadata(report: RunReport, guard: GuardReport, sync: SyncConfig) -> dict[str, Any]:
    """Metadata of a plan: what the next apply would do, record by record for a sample."""
    c = report.counts
    would = {
        "would_create": c.created,
        "would_update": c.updated,
        "would_archive": c.archived,
        "unchanged": c.unchanged,
        "noop": c.noop,
        "rejected": c.failed,
    }
    verdict = "guards pass" if guard.passed else f"**blocked**: {_short(guard.message)}"
    summary = "\n".join(
        [
            f"**{sync.name}** ({sync.object}) plan: {verdict}",
            "",
            _counts_row(would),
            "",
            f"{guard.synced} records are in sync today; archiving {guard.would_archive} is "
            f"{guard.archive_fraction:.0%} (limit {guard.max_archive_fraction:.0%}).",
        ]
    )
    return {
        **{k: dg.MetadataValue.int(v) for k, v in would.items()},
        "dagster/row_count": dg.MetadataValue.int(report.planned),
        "planned": dg.MetadataValue.int(report.planned),
        "synced": dg.MetadataValue.int(guard.synced),
        "summary": dg.MetadataValue.md(summary),
        "plan_sample": _plan_table(report.plan_sample, report.labels),
    }
