"""What the command line hands to schedulers: exit statuses and ``--json`` documents.

One exit-status table for every command (README, "Exit status"), decided here from the
error tree so that every path follows it:

====  ===========================================================================
0     success (every sync ran and nothing new failed; a read-only command worked)
1     a run failed: new failures above ``failure_threshold``, Kizen refused the
      credentials, Kizen or the warehouse failed
2     invalid configuration or invocation (sync file, unknown sync, missing
      credential, unknown table or column, mappings that do not fit Kizen, bad
      options), or a guard stopped the run before any write
3     another run holds the sync (its run lease); nothing was done
====  ===========================================================================

``--json`` prints exactly one JSON document on stdout, whatever happened (errors included),
with a stable shape (README, "JSON output"): the top level always has ``kizen_sync`` (the
shape's version), ``command`` and ``exit_status``; fields are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from kizen_sync.errors import ConfigError, KizenSyncError, SourceError
from kizen_sync.models import PlannedOp, RunReport

if TYPE_CHECKING:
    from kizen_sync.warehouse.failures import FailureListing

__all__ = [
    "JSON_VERSION",
    "CommandError",
    "ExitStatus",
    "document",
    "dumps",
    "error_entry",
    "exit_status",
    "failures_entry",
    "report_entry",
    "usage_document",
]

#: Version of the JSON documents' shape; bumped only when a field changes meaning.
JSON_VERSION = 1


class ExitStatus(IntEnum):
    """The exit statuses of every ``kizen-sync`` command (see the module docstring)."""

    OK = 0
    RUN_FAILED = 1
    INVALID = 2
    BUSY = 3


#: Error classes (by name, looked up along the class hierarchy) and their exit status. By
#: name, so that an error family added later (the run lease) needs only a line here.
_BY_CLASS: dict[str, ExitStatus] = {
    "LeaseHeldError": ExitStatus.BUSY,
    "ConfigError": ExitStatus.INVALID,
    "GuardError": ExitStatus.INVALID,
}


def exit_status(error: BaseException) -> ExitStatus:
    """The exit status an error ends a command with (1 unless the table says otherwise).

    A :class:`~kizen_sync.errors.SourceError` that names a key of the sync file (an unknown
    table or column, a primary key that is not unique) is a configuration problem (2), like
    a wrong field; one without (the warehouse failed mid-query) is a failed run (1).
    """
    if isinstance(error, SourceError) and error.context.get("key"):
        return ExitStatus.INVALID
    for cls in type(error).__mro__:
        found = _BY_CLASS.get(cls.__name__)
        if found is not None:
            return found
    return ExitStatus.RUN_FAILED


@dataclass(frozen=True)
class CommandError:
    """An error met by a command, kept to report it (and its sync) in the JSON document."""

    error: KizenSyncError
    sync: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def dumps(doc: Mapping[str, Any]) -> str:
    """The document as JSON text (UTF-8 kept, datetimes in ISO 8601)."""
    return json.dumps(_plain(doc), ensure_ascii=False, indent=2)


def error_entry(failure: CommandError) -> dict[str, Any]:
    """``{"sync", "error_class", "message", "exit_status", "problems": [{"key", "message"}]}``."""
    error = failure.error
    problems = error.problems if isinstance(error, ConfigError) else []
    return {
        "sync": failure.sync,
        "error_class": error.error_class,
        "message": error.message,
        "exit_status": int(exit_status(error)),
        "problems": [{"key": p.key, "message": p.message} for p in problems],
    }


def _op_entry(op: PlannedOp, labels: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    from kizen_sync.mapping.labels import change_text

    return {
        "source_key": op.source_key,
        "operation": op.op.value,
        "kizen_id": op.kizen_id,
        "identifier": op.identifier,
        "changes": [{"field": c.field, "change": change_text(c, dict(labels))} for c in op.changes],
        "error": str(op.error) if op.error is not None else None,
    }


def report_entry(report: RunReport) -> dict[str, Any]:
    """One sync's run (or dry run) as a JSON object (README, "JSON output")."""
    return {
        "sync": report.sync,
        "run_id": report.run_id,
        "partition_key": report.partition_key,
        "status": report.status,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "counts": report.counts.as_dict(),
        "planned": report.planned,
        "requests": report.requests,
        "would_archive": report.would_archive,
        "new_failures": report.new_failures,
        "known_failures": report.known_failed,
        "failure_rate": round(report.failure_rate, 6),
        "parked": report.parked,
        "parked_since": report.parked_since,
        "message": report.message,
        "failures": [dict(f) for f in report.failures],
        "plan_sample": [_op_entry(op, report.labels) for op in report.plan_sample],
    }


def document(
    command: str,
    status: int,
    *,
    errors: Iterable[CommandError] = (),
    **fields: Any,
) -> dict[str, Any]:
    """The one JSON document a command prints with ``--json``."""
    return {
        "kizen_sync": JSON_VERSION,
        "command": command,
        "exit_status": int(status),
        **fields,
        "errors": [error_entry(e) for e in errors],
    }


def usage_document(
    command: str | None, error_class: str, message: str, status: int
) -> dict[str, Any]:
    """The document of a command line click refused before any command ran (exit 2);
    ``command`` is None when not even the subcommand was understood.
    """
    error: dict[str, Any] = {
        "sync": None,
        "error_class": error_class,
        "message": message,
        "exit_status": int(status),
        "problems": [],
    }
    return {**document("", status), "command": command, "errors": [error]}


def reports_document(
    command: str, status: int, reports: Sequence[RunReport], errors: Iterable[CommandError] = ()
) -> dict[str, Any]:
    """``run`` / ``retry`` / ``plan``: one entry per sync under ``syncs``."""
    return document(command, status, errors=errors, syncs=[report_entry(r) for r in reports])


#: Columns of one failure in ``kizen-sync failures --json`` (``failures`` entries).
_FAILURE_KEYS = (
    "sync_name",
    "source_key",
    "kizen_id",
    "operation",
    "error_class",
    "error_message",
    "http_status",
    "reason",
    "parked",
    "parked_at",
    "first_failed_at",
    "last_failed_at",
    "failed_runs",
    "open_for_s",
)


def failures_entry(listing: FailureListing) -> dict[str, Any]:
    """``totals``, ``groups`` and ``failures`` of ``kizen-sync failures --json``."""
    rows = []
    for row in listing.rows:
        entry = {k: row.get(k) for k in _FAILURE_KEYS}
        entry["sync"] = entry.pop("sync_name")
        raw = row.get("field_errors")
        try:
            entry["field_errors"] = json.loads(raw) if isinstance(raw, str) else raw or {}
        except ValueError:
            entry["field_errors"] = {"": [str(raw)]}
        rows.append(entry)
    return {
        "totals": {
            "open": listing.total,
            "parked": listing.parked,
            "retrying": listing.retrying,
            "shown": len(listing.rows),
        },
        "groups": [g.as_dict() for g in listing.groups],
        "failures": rows,
    }
