"""Backfill partitions of a sync, and their translation into :class:`kizen_sync.models.Partition`.

A sync with ``source.cursor_column`` is sliced by time window of that column
(``partitions.granularity``, from ``partitions.start`` in ``partitions.timezone``): a backfill
over a date range re-syncs exactly the rows last updated in those windows. A sync without a
cursor is sliced into ``partitions.buckets`` static hash buckets of its primary key, which also
lets a very large first load be spread over several runs.
"""

from collections.abc import Callable
from datetime import date, datetime, time

import dagster as dg

from kizen_sync.config import SyncConfig
from kizen_sync.models import Partition

__all__ = ["DEFAULT_START", "bucket_keys", "partition_for_key", "partitions_for"]

#: First partition when the sync file gives no ``partitions.start``.
DEFAULT_START = "2024-01-01"

_WINDOWS: dict[str, Callable[..., dg.TimeWindowPartitionsDefinition]] = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "weekly": dg.WeeklyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


def bucket_keys(buckets: int) -> list[str]:
    """Partition keys of ``buckets`` hash buckets: ``bucket-00-of-8`` ... ``bucket-07-of-8``."""
    return [f"bucket-{i:02d}-of-{buckets}" for i in range(buckets)]


def partitions_for(sync: SyncConfig) -> dg.PartitionsDefinition:
    """Time windows of the cursor column, or primary-key hash buckets without a cursor.

    Time windows include the current, still open one (``end_offset=1``) so that rows changed
    today can be re-synced too.
    """
    settings = sync.partitions
    if sync.source.cursor_column is None:
        return dg.StaticPartitionsDefinition(bucket_keys(settings.buckets))
    start = datetime.combine(date.fromisoformat(settings.start or DEFAULT_START), time())
    window = _WINDOWS[settings.granularity]
    return window(start_date=start, timezone=settings.timezone, end_offset=1)


def partition_for_key(
    sync: SyncConfig, partitions_def: dg.PartitionsDefinition, key: str
) -> Partition:
    """The slice of the source that partition ``key`` stands for."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = partitions_def.time_window_for_partition_key(key)
        return Partition(key=key, start=window.start, end=window.end)
    buckets = sync.partitions.buckets
    return Partition(key=key, bucket=bucket_keys(buckets).index(key), buckets=buckets)
