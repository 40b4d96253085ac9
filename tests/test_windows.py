"""Time windows of the cursor column: keys, slices, and the rows each window holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from kizen_sync.config import SyncConfig
from kizen_sync.warehouse import Source
from kizen_sync.warehouse.windows import cursor_hours
from kizen_sync.windows import partition_of_key, rows_by_window, window_key


def make_sync(**source: Any) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "name": "people",
            "object": "client_client",
            "source": {"primary_key": ["id"], "cursor_column": "seen", **source},
            "identity": {"match_on": "email"},
            "fields": [{"column": "email", "field": "email"}],
        }
    )


@pytest.mark.parametrize(
    ("granularity", "key", "start", "end"),
    [
        ("hourly", "2024-03-10-09:00", datetime(2024, 3, 10, 9), datetime(2024, 3, 10, 10)),
        ("daily", "2024-03-10", datetime(2024, 3, 10), datetime(2024, 3, 11)),
        ("weekly", "2024-03-04", datetime(2024, 3, 4), datetime(2024, 3, 11)),
        ("monthly", "2024-12-01", datetime(2024, 12, 1), datetime(2025, 1, 1)),
    ],
)
def test_keys_and_slices_agree(granularity: Any, key: str, start: datetime, end: datetime) -> None:
    part = partition_of_key(key, granularity)
    assert (part.start, part.end) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    assert window_key(start, granularity) == key
    assert window_key(end.replace(microsecond=0) - (end - start) / 2, granularity) == key


def test_windows_in_another_time_zone() -> None:
    # 23:30 UTC on 9 March is already 10 March in Paris.
    assert window_key(datetime(2024, 3, 9, 23, 30, tzinfo=UTC), "daily", "Europe/Paris") == (
        "2024-03-10"
    )
    part = partition_of_key("2024-03-10", "daily", "Europe/Paris")
    assert part.start == datetime(2024, 3, 9, 23, tzinfo=UTC)


def test_a_key_that_is_not_a_window_start_is_refused() -> None:
    with pytest.raises(ValueError, match="not the start of a weekly window"):
        partition_of_key("2024-03-06", "weekly")


def test_rows_per_window_from_the_warehouse(db: Any) -> None:
    db.run(
        "CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT, seen TIMESTAMP, gone INTEGER)"
    )
    db.run(
        "INSERT INTO {s}people VALUES (1, 'a@x.io', '2024-03-01 10:15:00', 0),"
        " (2, 'b@x.io', '2024-03-01 10:45:00', 0), (3, 'c@x.io', '2024-03-03 08:00:00', 0),"
        " (4, 'd@x.io', NULL, 0), (5, 'e@x.io', '2024-03-20 08:00:00', 1)"
    )
    sync = make_sync(table=db.table("people"), soft_delete_column="gone")

    hours = cursor_hours(db.warehouse, sync)

    # Soft-deleted and cursor-less rows belong to no window.
    assert {k.replace(tzinfo=None): n for k, n in hours.items()} == {
        datetime(2024, 3, 1, 10): 2,
        datetime(2024, 3, 3, 8): 1,
    }
    assert rows_by_window(hours, "daily") == {"2024-03-01": 2, "2024-03-03": 1}
    assert rows_by_window(hours, "monthly") == {"2024-03-01": 3}
    assert rows_by_window(hours, "daily", start="2024-03-02") == {"2024-03-03": 1}
    # Each window's slice holds exactly the rows counted for it.
    source = Source(db.warehouse, sync)
    part = partition_of_key("2024-03-01", "daily")
    with db.warehouse.connect() as conn:
        stmt = select(func.count()).select_from(source.selectable)
        assert conn.execute(stmt.where(source.partition_clause(part))).scalar() == 2
