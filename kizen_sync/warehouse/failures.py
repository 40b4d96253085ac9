"""Parked failures and the failure listing people and schedulers read.

A record that failed for a reason that sending the same values again cannot fix (a value
that cannot be mapped, Kizen's 400, 404 or 409: :data:`PARKED_ERRORS`) is *parked*: the
``parked`` table remembers the fingerprint the row had when it failed.
While the row keeps that fingerprint, runs skip it (:meth:`ChangeDetector.iter_changes` with
``skip_parked``), so a table with known-bad rows does not re-send them, does not count them
against the guards, and does not fail every run. The fingerprint covers the row's mapped
columns *and* the mapping signature, so editing the row or the mapping sends it again, and so
do ``kizen-sync retry`` and ``run --include-parked``. Retryable failures (5xx, 429, timeouts,
anything not known to be permanent) are never parked: the next run sends them again.

Parking is written in the same transaction as the audit rows of the attempt that caused it
(:meth:`StateStore.record_results`), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, select

from kizen_sync import errors
from kizen_sync.failure_groups import FailureGroup, failure_reason, group_failures
from kizen_sync.models import ARCHIVE_FINGERPRINT, Operation, Outcome, RecordResult
from kizen_sync.warehouse.audit import utc
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.tables import StateTables

__all__ = [
    "PARKED_ERRORS",
    "FailureListing",
    "Failures",
    "ParkedSummary",
    "final_error_class",
    "is_parkable",
    "parking_changes",
]

_KEYS_PER_QUERY = 5000


#: The failures that sending the same values again cannot fix: a value that cannot be mapped,
#: Kizen's 400, 404 and 409 (subclasses included), and a bare SkippableError (e.g. no
#: identifier to create the record with). A write Kizen accepted but did not apply
#: (``NotAppliedError``) is sent again by the next run, like every retryable failure.
PARKED_ERRORS = frozenset(
    {"MappingError", "KizenValidationError", "NotFoundError", "ConflictError"}
)


def is_parkable(error_class: str | None) -> bool:
    """True for the error classes that sending the same values again cannot fix
    (:data:`PARKED_ERRORS`). An unknown class (an unexpected exception) is not parked: it may
    well be transient.
    """
    found = getattr(errors, error_class or "", None)
    if not isinstance(found, type) or not issubclass(found, errors.SkippableError):
        return False
    return found is errors.SkippableError or any(
        cls.__name__ in PARKED_ERRORS for cls in found.__mro__
    )


def final_error_class(result: RecordResult) -> str | None:
    """The error class that ended a failed result (last attempt's, else the planner's)."""
    if result.attempts:
        return result.attempts[-1].error_class
    error = result.op.error
    return None if error is None else getattr(error, "error_class", type(error).__name__)


def parking_changes(
    results: Iterable[RecordResult],
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """What a batch of results does to the ``parked`` table.

    A failed archive is parked under :data:`~kizen_sync.models.ARCHIVE_FINGERPRINT`: the
    row it would have fingerprinted is gone, and sending the same DELETE again cannot help.

    Returns:
        ``(park, unpark)``: source key -> (fingerprint, error class) of the records to park,
        and the keys whose parked row (if any) must go: they succeeded, or failed in a way
        worth retrying. The last result of a key in the batch wins.
    """
    park: dict[str, tuple[str, str]] = {}
    unpark: set[str] = set()
    for result in results:
        key = result.op.source_key
        park.pop(key, None)
        unpark.discard(key)
        error_class = final_error_class(result) if result.outcome is Outcome.FAILED else None
        fingerprint = result.op.fingerprint
        if result.op.op is Operation.ARCHIVE:  # the row is gone: park the deletion itself
            fingerprint = ARCHIVE_FINGERPRINT
        if error_class is not None and fingerprint is not None and is_parkable(error_class):
            park[key] = (fingerprint, error_class)
        else:
            unpark.add(key)
    return park, unpark


@dataclass(frozen=True)
class ParkedSummary:
    """How many records of a sync are parked, and since when the oldest one is."""

    count: int
    oldest: datetime | None


@dataclass
class FailureListing:
    """Open failures matching a filter, with true totals and the groups they form.

    Attributes:
        total: open failures matching the filter.
        parked: how many of them are parked (not re-sent until the row or mapping changes).
        retrying: how many will be sent again by the next run.
        rows: the newest ``limit`` of them (dicts; see :meth:`Failures.listing`).
        groups: all matching failures grouped by reason, largest first.
    """

    total: int = 0
    parked: int = 0
    retrying: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    groups: list[FailureGroup] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """``30 open: 27 parked, 3 retrying; showing 30``."""
        return (
            f"{self.total} open: {self.parked} parked, {self.retrying} retrying; "
            f"showing {len(self.rows)}"
        )


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): (utc(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _mentions(row: Mapping[str, Any], needle: str) -> bool:
    """Whether a failure's reason, full message or HTTP status contains ``needle``.

    The reason leaves values out (so that failures group); the message keeps them, so that
    ``--reason 'Umbrella Corp'`` finds the rows naming a related record nobody has.
    """
    texts = (row.get("reason"), row.get("error_message"), row.get("http_status"))
    return any(needle in str(text).casefold() for text in texts if text)


def _name(sync: Any) -> str:
    return sync if isinstance(sync, str) else str(sync.name)


class Failures:
    """Parked failures and the open-failure listing of one warehouse.

    Args:
        warehouse: where the state tables live.
        tables: their handles.
    """

    def __init__(self, warehouse: Warehouse, tables: StateTables) -> None:
        self.warehouse = warehouse
        self.tables = tables

    # --- writing (inside the caller's transaction) ----------------------------------------

    def apply(
        self,
        conn: Connection,
        sync: str,
        run_id: str,
        now: datetime,
        park: Mapping[str, tuple[str, str]],
        unpark: Collection[str],
    ) -> None:
        """Park and unpark records (see :func:`parking_changes`) on ``conn``.

        A record parked again with the fingerprint it already had keeps its ``parked_at``:
        it has been failing unchanged since then.
        """
        parked = self.tables.parked
        gone = sorted(set(unpark))
        for start in range(0, len(gone), _KEYS_PER_QUERY):
            conn.execute(
                delete(parked).where(
                    parked.c.sync_name == sync,
                    parked.c.source_key.in_(gone[start : start + _KEYS_PER_QUERY]),
                )
            )
        if not park:
            return

        def update(new: Any) -> dict[str, Any]:
            return {
                "parked_at": case(
                    (parked.c.fingerprint == new.fingerprint, parked.c.parked_at),
                    else_=new.parked_at,
                ),
                "fingerprint": new.fingerprint,
                "error_class": new.error_class,
                "run_id": new.run_id,
            }

        stmt = self.warehouse.sql_dialect.upsert(parked, ["sync_name", "source_key"], update)
        self.warehouse.sql_dialect.insert_rows(
            conn,
            stmt,
            parked,
            [
                {
                    "sync_name": sync,
                    "source_key": key,
                    "fingerprint": fingerprint,
                    "error_class": error_class,
                    "run_id": run_id,
                    "parked_at": now,
                }
                # In key order, like the state rows: two flushes never deadlock on them.
                for key, (fingerprint, error_class) in sorted(park.items())
            ],
        )

    # --- reading ---------------------------------------------------------------------------

    def has_parked(self, sync: Any) -> bool:
        """Whether any record of ``sync`` is parked (diffs skip the join when none is)."""
        parked = self.tables.parked
        stmt = select(parked.c.source_key).where(parked.c.sync_name == _name(sync)).limit(1)
        with self.warehouse.connect() as conn:
            return conn.execute(stmt).first() is not None

    def fingerprints(self, sync: Any, keys: Collection[str] | None = None) -> dict[str, str]:
        """Source key -> the fingerprint each parked record of ``sync`` failed with."""
        parked = self.tables.parked
        base = select(parked.c.source_key, parked.c.fingerprint).where(
            parked.c.sync_name == _name(sync)
        )
        out: dict[str, str] = {}
        with self.warehouse.connect() as conn:
            if keys is None:
                out.update((k, f) for k, f in conn.execute(base).all())
                return out
            ordered = sorted(set(keys))
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                batch = ordered[start : start + _KEYS_PER_QUERY]
                stmt = base.where(parked.c.source_key.in_(batch))
                out.update((k, f) for k, f in conn.execute(stmt).all())
        return out

    def error_classes(self, sync: Any) -> dict[str, str]:
        """Source key -> the error class of each parked record of ``sync``."""
        parked = self.tables.parked
        stmt = select(parked.c.source_key, parked.c.error_class).where(
            parked.c.sync_name == _name(sync)
        )
        with self.warehouse.connect() as conn:
            return {str(k): str(c) for k, c in conn.execute(stmt) if c}

    def archive_keys(self, sync: Any) -> frozenset[str]:
        """Source keys of ``sync`` whose archive failed for good and is parked."""
        parked = self.tables.parked
        stmt = select(parked.c.source_key).where(
            parked.c.sync_name == _name(sync), parked.c.fingerprint == ARCHIVE_FINGERPRINT
        )
        with self.warehouse.connect() as conn:
            return frozenset(str(k) for (k,) in conn.execute(stmt))

    def summary(self, sync: Any) -> ParkedSummary:
        """How many records of ``sync`` are parked and the oldest ``parked_at``."""
        parked = self.tables.parked
        stmt = select(func.count(), func.min(parked.c.parked_at)).where(
            parked.c.sync_name == _name(sync)
        )
        with self.warehouse.connect() as conn:
            count, oldest = conn.execute(stmt).one()
        return ParkedSummary(int(count or 0), utc(oldest) if oldest is not None else None)

    def listing(
        self,
        sync: Any | None = None,
        *,
        reason: str | None = None,
        older_than: timedelta | None = None,
        newer_than: timedelta | None = None,
        limit: int | None = 100,
        now: datetime | None = None,
    ) -> FailureListing:
        """Open failures (newest first) matching every filter given, with true totals.

        Args:
            sync: only this sync.
            reason: only failures whose reason (:func:`failure_reason`) or full message
                contains this text, case-insensitively (``MappingError``, ``email_status``,
                ``409``, or a value the message quotes: ``Umbrella Corp``).
            older_than: only failures open for at least this long (since their first
                failure after the last success).
            newer_than: only failures open for less than this.
            limit: rows kept in ``rows`` (totals and groups always cover every match).
            now: the time ages are measured from (default: now).

        Each row holds the ``open_failures`` view's columns plus ``reason``, ``parked``
        (bool), ``parked_at`` and ``open_for_s`` (seconds since ``first_failed_at``).
        """
        view, parked = self.tables.open_failures, self.tables.parked
        joined = view.outerjoin(
            parked,
            and_(parked.c.sync_name == view.c.sync_name, parked.c.source_key == view.c.source_key),
        )
        stmt = (
            select(view, parked.c.parked_at)
            .select_from(joined)
            .order_by(view.c.last_failed_at.desc(), view.c.sync_name, view.c.source_key)
        )
        if sync is not None:
            stmt = stmt.where(view.c.sync_name == _name(sync))
        with self.warehouse.connect() as conn:
            found = [_plain(r) for r in conn.execute(stmt).mappings()]
        moment = now or datetime.now(UTC)
        needle = reason.casefold() if reason else None
        out = FailureListing()
        matched: list[dict[str, Any]] = []
        for row in found:
            first = row.get("first_failed_at")
            open_for = (moment - first).total_seconds() if isinstance(first, datetime) else 0.0
            if older_than is not None and open_for < older_than.total_seconds():
                continue
            if newer_than is not None and open_for >= newer_than.total_seconds():
                continue
            row["reason"] = failure_reason(row)
            if needle is not None and not _mentions(row, needle):
                continue
            row["parked"] = row.get("parked_at") is not None
            row["open_for_s"] = max(0.0, open_for)
            matched.append(row)
        out.total = len(matched)
        out.parked = sum(1 for r in matched if r["parked"])
        out.retrying = out.total - out.parked
        out.groups = group_failures(matched)
        out.rows = matched if limit is None else matched[:limit]
        return out
