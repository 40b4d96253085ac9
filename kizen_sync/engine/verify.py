"""Read-after-write verification: does Kizen hold what it accepted?

A 2xx only says Kizen took the request. Where a wire shape is unverified (docs/architecture.md,
"Wire shapes"), Kizen may accept it and apply something else, or nothing; the sync would then
record success and never send the record again. Verification re-reads written records and
compares, field by field, the canonical value Kizen holds with the one that was sent, so that
"accepted but not applied" becomes a record failure (:class:`~kizen_sync.errors.NotAppliedError`)
that the next run retries.

Which records are re-read is decided by :class:`VerifyPolicy`: all, none, or a sample chosen
by a hash of the record's source key (the same records are chosen on every run, so a test can
predict them), plus, on a sync's first runs against an account, the first few records written
whatever their keys, so that even a small first run reads something back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kizen_sync import mapping
from kizen_sync.client import KizenClient
from kizen_sync.errors import NotAppliedError
from kizen_sync.models import FieldChange, PlannedOp
from kizen_sync.schema import OPTION_TYPES, FieldSchema, ObjectSchema

__all__ = ["VerifyPolicy", "mismatches", "verify_written"]

_SCALE = float(2**64)


@dataclass(frozen=True)
class VerifyPolicy:
    """Which written records to re-read.

    Attributes:
        rate: fraction of written records to verify (0 = none, 1 = all).
        first: also verify the first this many records written in the run.
        reason: why this policy applies (``"the sync file"``, ``"the sync's first run"``), for
            the run's log line.
    """

    rate: float = 0.0
    first: int = 0
    reason: str = ""

    @property
    def active(self) -> bool:
        """Whether any record may be verified."""
        return self.rate > 0 or self.first > 0

    def chosen(self, source_key: str) -> bool:
        """Whether this record is verified; stable across runs for a given key and rate."""
        if self.rate <= 0:
            return False
        if self.rate >= 1:
            return True
        digest = hashlib.blake2b(source_key.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / _SCALE < self.rate


def _show(field: FieldSchema, value: Any) -> str:
    """A canonical value for a message: option ids by their label, nothing as ``nothing``."""
    if value is None or value == []:
        return "nothing"
    if field.field_type in OPTION_TYPES and isinstance(value, str):
        option = field.option_by_id(value)
        return repr(option.name) if option is not None else repr(value)
    return repr(value)


def _compare(field: FieldSchema, change: FieldChange, held: Any) -> tuple[str, str] | None:
    """``(held, sent)`` as text when Kizen does not hold what ``change`` wrote, else None."""
    if field.is_multi_valued and (change.add or change.remove) and not change.mirror:
        have = set(held or ())
        missing = [v for v in change.add if v not in have]
        kept = [v for v in change.remove if v in have]
        if not missing and not kept:
            return None
        sent = ", ".join([*(f"+{v}" for v in change.add), *(f"-{v}" for v in change.remove)])
        return _show(field, sorted(have)), sent
    want = change.after
    if field.is_multi_valued:
        want = sorted(want or [])
        held = sorted(held or [])
    if held == want or (held in (None, []) and want in (None, [])):
        return None
    return _show(field, held), _show(field, want)


async def _held(
    client: KizenClient, schema: ObjectSchema, record_id: str, fields: list[FieldSchema]
) -> dict[str, Any]:
    record = await client.get_record(schema.name, record_id, field_names=[f.name for f in fields])
    out: dict[str, Any] = {}
    for f in fields:
        current = record.field(f.id) or record.field(f.name)
        if current is None:
            out[f.name] = None
        elif current.is_summarized:
            out[f.name] = sorted(
                {item.id async for item in client.iter_field_values(record_id, f.id)}
            )
        else:
            out[f.name] = mapping.canonical_from_read(f, current.value)
    return out


def mismatches(
    schema: ObjectSchema, changes: Iterable[FieldChange], held: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """``(field, held, sent)`` for every written field Kizen does not hold as sent."""
    out: list[tuple[str, str, str]] = []
    for change in changes:
        field = schema.field(change.field)
        if field is None:
            continue
        diff = _compare(field, change, held.get(field.name))
        if diff is not None:
            out.append((field.name, *diff))
    return out


async def verify_written(
    client: KizenClient, schema: ObjectSchema, record_id: str, op: PlannedOp
) -> None:
    """Re-read the fields ``op`` wrote and raise when Kizen holds something else.

    Raises:
        NotAppliedError: one or more fields differ; each is named with what Kizen holds.
        ValueError: Kizen answered with a read shape the mapping does not know (the caller
            turns it into a record failure, like any other unexpected answer).
    """
    fields = [f for c in op.changes if (f := schema.field(c.field)) is not None]
    if not fields:
        return
    held = await _held(client, schema, record_id, fields)
    found = mismatches(schema, op.changes, held)
    if found:
        raise NotAppliedError(record_id=record_id, mismatches=found)
