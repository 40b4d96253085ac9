"""The audit table's rows, and the redaction policy that keeps sensitive values out of them.

The audit table is meant to be shared more widely than the state table. Per attempt it holds:

- ``operation``: the planned operation (``create``, ``update``, ``archive``, ``noop``,
  ``fail``), :data:`FORGET` for a state row dropped without any request, or :data:`RESOLVE`
  for an open failure closed because nothing is left to send;
- ``changed_fields``: JSON ``{field API name: written value}`` of the fields the op wrote. The
  *names* are the contract; the values of non-sensitive fields are kept only to help debugging
  (``{"add": [...], "remove": [...]}`` for multi-valued fields, ids as sent), and the value of
  every sensitive field is replaced by ``"[redacted]"``;
- ``error_message`` and ``field_errors`` (JSON ``{field: [message, ...]}``: Kizen's messages
  per field for a 400, the mapping problems per field for a row that could not be mapped):
  problems of sensitive fields are withheld, and any text form of a sensitive value that a
  message might echo is replaced by ``"[redacted]"``;
- ``values_hash``: an HMAC-SHA256 of the record's values (:func:`kizen_sync.mapping.hash_values`,
  keyed with a secret kept outside the warehouse), never the values themselves.

"Sensitive fields" are the API names (and field ids) of the fields mapped with
``sensitive: true``; the runner resolves them through the object's schema
(:meth:`~kizen_sync.config.SyncConfig.sensitive_field_keys`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kizen_sync.errors import MappingError
from kizen_sync.mapping import hash_values
from kizen_sync.models import RecordResult
from kizen_sync.warehouse.codec import tag

__all__ = ["FORGET", "MESSAGE_LIMIT", "REKEY", "RESOLVE", "audit_rows", "rekey_row", "utc"]

#: Longest message stored in a text column of the audit and runs tables.
MESSAGE_LIMIT = 2000
_REDACTED = "[redacted]"
_WITHHELD = "value rejected (details withheld: sensitive field)"
#: The audit ``operation`` of a "forget the state row" op (a NOOP in the plan).
FORGET = "forget"
#: Audit operation of an open failure closed without a request: the row no longer needs a
#: write (it matches what Kizen last confirmed again, or it left the source before it was
#: ever synced). See :meth:`~kizen_sync.warehouse.state.StateStore.resolve_failures`.
RESOLVE = "resolve"
#: Audit operation, on the *old* source key, of a re-key: the row came back under another key
#: with the same identifier, and its record and state moved there (no request of its own;
#: the new key's row carries the write).
REKEY = "rekey"


def utc(value: datetime) -> datetime:
    """Aware UTC; naive datetimes are taken to be UTC already (SQLite stores them so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def audit_rows(
    result: RecordResult,
    run_id: str,
    sync_name: str,
    partition_key: str | None,
    sensitive: frozenset[str],
    hash_key: bytes | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The audit rows of one record's result: one per HTTP attempt, or one (attempt 0) when
    nothing was sent; the last row carries the record's final outcome.
    """
    op = result.op
    secrets = _secret_texts(result, sensitive)
    common = {
        "run_id": run_id,
        "sync_name": sync_name,
        "partition_key": partition_key,
        "source_key": op.source_key,
        "kizen_id": result.kizen_id or op.kizen_id,
        "operation": FORGET if op.forgets_state else op.op.value,
        "changed_fields": json.dumps(
            _changed_fields(result, sensitive), sort_keys=True, default=str
        ),
        "values_hash": hash_values(op.new_values, hash_key) if hash_key is not None else None,
    }
    if not result.attempts:
        error_class, message, field_errors = _describe_error(op.error, sensitive)
        return [
            {
                **common,
                "outcome": result.outcome.value,
                "http_status": None,
                "error_class": error_class,
                "error_message": _scrub(message, secrets),
                "field_errors": _field_errors(field_errors, secrets),
                "attempt": 0,
                "started_at": now,
                "finished_at": now,
            }
        ]
    rows = []
    last = len(result.attempts) - 1
    for i, attempt in enumerate(result.attempts):
        rows.append(
            {
                **common,
                "outcome": (result.outcome if i == last else attempt.outcome).value,
                "http_status": attempt.http_status,
                "error_class": attempt.error_class,
                "error_message": _scrub(attempt.error_message, secrets),
                "field_errors": _field_errors(attempt.field_errors, secrets),
                "attempt": attempt.attempt,
                "started_at": utc(attempt.started_at),
                "finished_at": utc(attempt.finished_at),
            }
        )
    return rows


def _changed_fields(result: RecordResult, sensitive: frozenset[str]) -> dict[str, Any]:
    """``{field API name: written value}`` for the audit's ``changed_fields`` column.

    The keys (which fields were written) are the column's contract; the values are kept for
    debugging only, and a sensitive field shows only that it was written (``"[redacted]"``).
    """
    out: dict[str, Any] = {}
    for change in result.op.changes:
        if change.field in sensitive:
            out[change.field] = _REDACTED
        elif change.add or change.remove:
            out[change.field] = {"add": tag(list(change.add)), "remove": tag(list(change.remove))}
        else:
            out[change.field] = tag(change.after)
    return out


def _secret_texts(result: RecordResult, sensitive: frozenset[str]) -> list[str]:
    """Text forms of sensitive values, to scrub from messages that may echo them.

    Canonical values (state, changes, mirror sets) and the wire values of the request
    entries that address a sensitive field by name or by id are all collected, since Kizen
    echoes what it was sent, which is not always the canonical spelling.
    """
    op = result.op
    found: list[Any] = [v for k, v in op.new_values.items() if k in sensitive]
    for change in op.changes:
        if change.field in sensitive:
            found += [change.before, change.after, *change.add, *change.remove]
    found += [v for k, v in op.mirror.items() if k in sensitive]
    for entry in op.entries:
        if entry.get("name") in sensitive or entry.get("id") in sensitive:
            found += [entry.get(k) for k in ("value", "add_values", "remove_values")]
    flat: list[str] = []
    for value in found:
        items = value if isinstance(value, list | tuple | set | frozenset) else [value]
        for item in items:
            if isinstance(item, dict):  # {"id": ...} of an option, member or relation
                item = item.get("id")
            text_value = "" if item is None else str(item)
            if len(text_value) >= 2:
                flat.append(text_value)
    return sorted(set(flat), key=len, reverse=True)


def _scrub(message: str | None, secrets: list[str]) -> str | None:
    """``message`` without any of ``secrets``, cut to the column's limit.

    Case-insensitive, because Kizen may lower-case an e-mail address it echoes.
    """
    if message is None:
        return None
    for secret in secrets:
        message = re.sub(re.escape(secret), _REDACTED, message, flags=re.IGNORECASE)
    return message[:MESSAGE_LIMIT]


def _field_errors(errors: Mapping[str, list[str]] | None, secrets: list[str]) -> str | None:
    if not errors:
        return None
    return json.dumps(
        {k: [_scrub(m, secrets) for m in v] for k, v in errors.items()}, sort_keys=True
    )


def _describe_error(
    error: Exception | None, sensitive: frozenset[str]
) -> tuple[str | None, str | None, dict[str, list[str]] | None]:
    """Audit columns (class, message, per-field messages) of an op the planner rejected.

    A mapping error is described problem by problem, each under its field, and the problem
    of a sensitive field is withheld here too: the planner already withholds it, but the
    audit must not depend on every producer of a :class:`MappingError` doing so.
    """
    if error is None:
        return None, None, None
    error_class = getattr(error, "error_class", type(error).__name__)
    if isinstance(error, MappingError):
        parts: list[str] = []
        by_field: dict[str, list[str]] = {}
        for single in error.each():
            problem = _WITHHELD if single.field in sensitive else single.problem
            parts.append(f"column {single.column!r} -> field {single.field!r}: {problem}")
            by_field.setdefault(single.field, []).append(problem)
        return error_class, "; ".join(parts), by_field
    return error_class, str(error) or error_class, None


def rekey_row(
    result: RecordResult, run_id: str, sync_name: str, partition_key: str | None, now: datetime
) -> dict[str, Any]:
    """The audit row of a re-key's old source key (its state row moved to the new key)."""
    op = result.op
    return {
        "run_id": run_id,
        "sync_name": sync_name,
        "partition_key": partition_key,
        "source_key": op.replaces_key,
        "kizen_id": result.kizen_id or op.kizen_id,
        "operation": REKEY,
        "changed_fields": "{}",
        "values_hash": None,
        "outcome": "success",
        "http_status": None,
        "error_class": None,
        "error_message": f"re-keyed: the record now belongs to source key '{op.source_key}'",
        "field_errors": None,
        "attempt": 0,
        "started_at": now,
        "finished_at": now,
    }
