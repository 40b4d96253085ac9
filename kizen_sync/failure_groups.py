"""Open failures grouped by reason: error class + field + message pattern.

Two hundred records failing with ``value 'x@' is not a valid e-mail address`` are one problem
to fix (a column or a mapping), not two hundred. A failure's *reason* is its error class, the
field the mapper or Kizen named, and the message with its record-specific parts (quoted
values, e-mail addresses, UUIDs, numbers) replaced by placeholders, so that failures of the
same kind land in one group however their values differ.

Pure: it works on plain mappings with the keys of the ``open_failures`` view (``error_class``,
``error_message``, ``field_errors``, ``source_key``, ``kizen_id``) or of a run report's failure
sample (``message`` instead of ``error_message``), so that the CLI, the Dagster metadata and
the JSON output show the same groups.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any

__all__ = ["KEYS_KEPT", "FailureGroup", "failure_field", "failure_reason", "group_failures"]

#: Source keys and Kizen ids kept per group (``count`` says how many records there are).
KEYS_KEPT = 20

#: Record-specific parts of a message, in the order they are replaced.
_VARIABLE_PARTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"), "<id>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # Not a number that is part of a name (``E.164``, ``v2``): those are the same in every
    # message of the kind.
    (re.compile(r"(?<![\w<.])[+-]?\d+(?:\.\d+)?(?![\w>])"), "N"),
    (re.compile(r"\s+"), " "),
)
#: A mapping error's message starts with where the value came from.
_COLUMN_PREFIX = re.compile(r"^column '[^']*' -> field '([^']*)': ")


#: Kizen's HTTP status opening a message (``409 Record is locked.``): the same for every
#: failure of the kind, so it stays in the reason.
_STATUS_PREFIX = re.compile(r"^[1-5]\d\d (?=\D)")


def _pattern(message: str) -> str:
    status = _STATUS_PREFIX.match(message)
    head = status.group(0) if status else ""
    message = message[len(head) :]
    for regex, placeholder in _VARIABLE_PARTS:
        message = regex.sub(placeholder, message)
    return (head + message).strip()


def _field_errors(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("field_errors")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def _message(row: Mapping[str, Any]) -> str:
    return str(row.get("error_message") or row.get("message") or "")


def _field_and_text(row: Mapping[str, Any]) -> tuple[str | None, str]:
    """The field a failure names, and the text that describes its problem best."""
    errors = _field_errors(row)
    if errors:
        name = sorted(errors)[0]
        messages = errors[name]
        first = messages[0] if isinstance(messages, list) and messages else messages
        return str(name), str(first or _message(row))
    message = _message(row)
    prefixed = _COLUMN_PREFIX.match(message)
    if prefixed:
        return prefixed.group(1), message[prefixed.end() :]
    return None, message


def failure_field(row: Mapping[str, Any]) -> str | None:
    """The Kizen field a failure is about, when the mapper or Kizen named one."""
    return _field_and_text(row)[0]


def failure_reason(row: Mapping[str, Any]) -> str:
    """``ErrorClass · field: message pattern`` of one failure (parts left out when unknown)."""
    error_class = str(row.get("error_class") or "Error")
    name, text = _field_and_text(row)
    where = f" · {name}" if name else ""
    pattern = _pattern(text)
    return f"{error_class}{where}: {pattern}" if pattern else f"{error_class}{where}"


@dataclass
class FailureGroup:
    """The failures that share one reason.

    Attributes:
        reason: error class, field and message pattern (see :func:`failure_reason`).
        error_class: the error class of the group.
        field: the field the group's failures are about, when one is named.
        count: records in the group.
        parked: how many of them are parked (rows with ``parked`` true).
        source_keys: the first :data:`KEYS_KEPT` source keys, in the order given.
        kizen_ids: their Kizen record ids where known (same order, None when unknown).
        example: the full message of the group's first record (its concrete value).
        example_row: that record as given (source key, Kizen id, messages, ...).
    """

    reason: str
    error_class: str = "Error"
    field: str | None = None
    count: int = 0
    parked: int = 0
    source_keys: list[str] = _field(default_factory=list)
    kizen_ids: list[str | None] = _field(default_factory=list)
    example: str = ""
    example_row: dict[str, Any] = _field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``groups`` entries of ``kizen-sync failures --json``)."""
        return {
            "reason": self.reason,
            "error_class": self.error_class,
            "field": self.field,
            "count": self.count,
            "parked": self.parked,
            "source_keys": list(self.source_keys),
            "kizen_ids": list(self.kizen_ids),
            "example": self.example,
        }


def group_failures(rows: Iterable[Mapping[str, Any]]) -> list[FailureGroup]:
    """Failures grouped by reason, the largest group first (ties: first seen first)."""
    groups: dict[str, FailureGroup] = {}
    for row in rows:
        reason = failure_reason(row)
        group = groups.get(reason)
        if group is None:
            group = groups[reason] = FailureGroup(
                reason=reason,
                error_class=str(row.get("error_class") or "Error"),
                field=failure_field(row),
                example=_message(row),
                example_row=dict(row),
            )
        group.count += 1
        group.parked += bool(row.get("parked"))
        if len(group.source_keys) < KEYS_KEPT:
            group.source_keys.append(str(row.get("source_key")))
            kizen_id = row.get("kizen_id")
            group.kizen_ids.append(str(kizen_id) if kizen_id else None)
    return sorted(groups.values(), key=lambda g: -g.count)
