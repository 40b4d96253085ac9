"""Time windows of a sync's cursor column: partition keys, the slice each key means, and the
rows per window.

Backfill partitions come from the data, not from a hard-coded start date: a run asks the
warehouse how many live rows fall in each hour of ``source.cursor_column``
(:func:`kizen_sync.warehouse.windows.cursor_hours`, one grouped query), and the windows of the
sync's granularity that hold rows (:func:`rows_by_window`, pure) become the partitions people
can pick. The Dagster layer records them as dynamic partitions, so a code location loads
without touching the warehouse.

Keys follow Dagster's own time-partition formats: ``2024-03-01-09:00`` (hourly),
``2024-03-01`` (daily; weekly keys are the Monday the week starts on; monthly keys the first
of the month). Naive cursor values are read as UTC, as the partition filter reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from kizen_sync.models import Partition

__all__ = ["Granularity", "partition_of_key", "rows_by_window", "window_key"]

Granularity = Literal["hourly", "daily", "weekly", "monthly"]

_HOURLY = "%Y-%m-%d-%H:%M"
_DAY = "%Y-%m-%d"


def _start(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the window holding ``moment`` (in ``moment``'s zone)."""
    if granularity == "hourly":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "weekly":
        return day - timedelta(days=day.weekday())
    if granularity == "monthly":
        return day.replace(day=1)
    return day


def window_key(moment: datetime, granularity: Granularity, timezone: str = "UTC") -> str:
    """The partition key of the window holding ``moment`` (naive means UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    local = aware.astimezone(ZoneInfo(timezone))
    start = _start(local, granularity)
    return start.strftime(_HOURLY if granularity == "hourly" else _DAY)


def partition_of_key(key: str, granularity: Granularity, timezone: str = "UTC") -> Partition:
    """The slice of the source that partition ``key`` stands for: ``[start, end)``.

    Raises:
        ValueError: ``key`` is not a key of this granularity.
    """
    zone = ZoneInfo(timezone)
    parsed = datetime.strptime(key, _HOURLY if granularity == "hourly" else _DAY)  # noqa: DTZ007
    start = parsed.replace(tzinfo=zone)
    if _start(start, granularity) != start:
        raise ValueError(f"{key!r} is not the start of a {granularity} window")
    if granularity == "hourly":
        end = start + timedelta(hours=1)
    elif granularity == "daily":
        end = start + timedelta(days=1)
    elif granularity == "weekly":
        end = start + timedelta(days=7)
    else:
        first = start.date().replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        end = datetime.combine(following, start.timetz())
    # Wall-clock arithmetic across a DST change: normalise through UTC.
    return Partition(key=key, start=start.astimezone(UTC), end=end.astimezone(UTC))


def rows_by_window(
    hours: Mapping[datetime, int],
    granularity: Granularity,
    timezone: str = "UTC",
    start: str | None = None,
) -> dict[str, int]:
    """Rows per partition key, in key order; windows before ``start`` (ISO date) left out."""
    counts: Counter[str] = Counter()
    for moment, n in hours.items():
        counts[window_key(moment, granularity, timezone)] += n
    if start is not None:
        first = window_key(
            datetime.combine(date.fromisoformat(start), datetime.min.time(), ZoneInfo(timezone)),
            granularity,
            timezone,
        )
        counts = Counter({k: n for k, n in counts.items() if k >= first})
    return dict(sorted(counts.items()))
