"""Backfill partitions of a sync, taken from the data.

A sync with ``source.cursor_column`` is sliced by time window of that column
(``partitions.granularity``). Which windows exist is a fact about the data, so the partitions
are *dynamic*: every run of the sync counts the live rows per window in the warehouse (one
grouped query) and adds the windows that hold rows as partitions. The code location itself
never queries the warehouse when it loads, the first partition is the window of the source's
first cursor value, and the launch dialog offers exactly the windows that hold rows. A window
that has lost all its rows stays listed; its next backfill run says it is empty (0 rows).

A sync without a cursor is sliced into ``partitions.buckets`` static hash buckets of its
primary key, which also lets a very large first load be spread over several runs.
"""

from __future__ import annotations

import dagster as dg

from kizen_sync.config import SyncConfig
from kizen_sync.models import Partition
from kizen_sync.warehouse import Warehouse
from kizen_sync.warehouse.windows import cursor_hours
from kizen_sync.windows import partition_of_key, rows_by_window

__all__ = [
    "bucket_keys",
    "partition_for_key",
    "partitions_for",
    "partitions_name",
    "record_partitions",
]


def bucket_keys(buckets: int) -> list[str]:
    """Partition keys of ``buckets`` hash buckets: ``bucket-00-of-8`` ... ``bucket-07-of-8``."""
    return [f"bucket-{i:02d}-of-{buckets}" for i in range(buckets)]


def partitions_name(sync: SyncConfig) -> str:
    """Name of the dynamic partitions of a sync with a cursor, e.g. ``contacts_daily``."""
    return f"{sync.name}_{sync.partitions.granularity}"


def partitions_for(sync: SyncConfig) -> dg.PartitionsDefinition:
    """Dynamic time windows of the cursor column, or primary-key hash buckets without one."""
    if sync.source.cursor_column is None:
        return dg.StaticPartitionsDefinition(bucket_keys(sync.partitions.buckets))
    return dg.DynamicPartitionsDefinition(name=partitions_name(sync))


def partition_for_key(sync: SyncConfig, key: str) -> Partition:
    """The slice of the source that partition ``key`` stands for."""
    settings = sync.partitions
    if sync.source.cursor_column is not None:
        return partition_of_key(key, settings.granularity, settings.timezone)
    return Partition(
        key=key, bucket=bucket_keys(settings.buckets).index(key), buckets=settings.buckets
    )


def record_partitions(
    instance: dg.DagsterInstance, warehouse: Warehouse, sync: SyncConfig
) -> dict[str, int] | None:
    """Count rows per window and add the windows that hold rows as partitions.

    Returns:
        Rows per partition key (None for a sync without a cursor: its buckets are static).
    """
    if sync.source.cursor_column is None:
        return None
    settings = sync.partitions
    rows = rows_by_window(
        cursor_hours(warehouse, sync), settings.granularity, settings.timezone, settings.start
    )
    name = partitions_name(sync)
    known = set(instance.get_dynamic_partitions(name))
    new = [key for key in rows if key not in known]
    if new:
        instance.add_dynamic_partitions(name, new)
    return rows
