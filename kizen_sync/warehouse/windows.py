"""Rows per hour of a sync's cursor column, counted in the warehouse.

The windows and keys built from these counts are pure: :mod:`kizen_sync.windows`.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from kizen_sync.config import SyncConfig
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.source import Source

__all__ = ["cursor_hours"]


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def cursor_hours(warehouse: Warehouse, sync: SyncConfig) -> dict[datetime, int]:
    """Live rows per hour of the cursor column (UTC), counted in the warehouse.

    Soft-deleted rows and rows without a cursor value are left out: they belong to no window.

    Raises:
        SourceError: the source or its cursor column does not exist (naming the key).
        ValueError: the sync has no ``source.cursor_column``.
    """
    name = sync.source.cursor_column
    if name is None:
        raise ValueError(f"sync {sync.name!r} has no source.cursor_column")
    source = Source(warehouse, sync)
    cursor = source.column(name)
    hour = warehouse.sql_dialect.cursor_hour(cursor).label("hour")
    stmt = select(hour, func.count().label("n")).where(cursor.is_not(None)).group_by(hour)
    deleted = source.soft_deleted()
    if deleted is not None:
        stmt = stmt.where(~deleted)
    counts: Counter[datetime] = Counter()
    with warehouse.connect() as conn:
        for value, n in conn.execute(stmt):
            moment = _as_datetime(value)
            if moment is not None:
                counts[moment] += int(str(n))
    return dict(counts)
