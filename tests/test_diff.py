from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from kizen_sync.config import SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.models import ChangedRow, ChangeKind, Operation, Partition, RecordResult
from kizen_sync.warehouse import (
    ArchiveCounts,
    ChangeDetector,
    ChangeTally,
    StateStore,
    Warehouse,
    bucket_of,
    fingerprint_columns,
    mapping_signature,
)


def make_sync(table: str, *, pk: tuple[str, ...] = ("id",), **source: Any) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "name": "accounts_sync",
            "object": "accounts",
            "source": {"table": table, "primary_key": list(pk), **source},
            "identity": {"match_on": "name"},
            "fields": [
                {"column": "name", "field": "name"},
                {"column": "score", "field": "health_score"},
            ],
        }
    )


def edited(sync: SyncConfig, **changes: Any) -> SyncConfig:
    return SyncConfig.model_validate(sync.model_dump() | changes)


def test_mapping_signature_moves_with_the_mapping_and_only_with_it() -> None:
    sync = make_sync("acct")
    fields = sync.model_dump()["fields"]
    same = [
        edited(sync, description="documented", schedule="0 * * * *", max_reject_rate=0.5),
        edited(sync, fields=[fields[0], {**fields[1], "sensitive": True}]),
    ]
    moved = [
        edited(sync, fields=[fields[0], {**fields[1], "field": "employees"}]),
        edited(sync, fields=[fields[0], {**fields[1], "null": "leave"}]),
        edited(sync, identity={"record_id_column": "name"}),
        edited(sync, object="companies"),
    ]
    assert {mapping_signature(s) for s in same} == {mapping_signature(sync)}
    signatures = {mapping_signature(s) for s in moved}
    assert len(signatures) == len(moved)
    assert mapping_signature(sync) not in signatures


def seed(db: Any, rows: int = 6) -> None:
    db.run(
        "CREATE TABLE {s}acct"
        " (id INTEGER PRIMARY KEY, name TEXT, score NUMERIC(6,2), seen DATE, gone INTEGER)"
    )
    for i in range(1, rows + 1):
        db.run(
            "INSERT INTO {s}acct VALUES (:i, :n, :v, :d, 0)",
            {"i": i, "n": f"acct {i}", "v": i * 1.5, "d": f"2024-01-0{1 + i % 3}"},
        )


def changes(detector: ChangeDetector, **kwargs: Any) -> dict[str, ChangedRow]:
    return {row.source_key: row for chunk in detector.iter_changes(**kwargs) for row in chunk}


def kinds(detector: ChangeDetector, **kwargs: Any) -> dict[str, str]:
    return {k: r.kind.value for k, r in changes(detector, **kwargs).items()}


SyncAll = Callable[..., None]


@pytest.fixture
def sync_all(result: Callable[..., RecordResult]) -> SyncAll:
    """Pretend Kizen confirmed every change the detector reports."""

    def confirm(detector: ChangeDetector, run_id: str = "run-1") -> None:
        results = []
        for key, row in changes(detector).items():
            op = Operation.ARCHIVE if row.kind is ChangeKind.DELETED else Operation.UPDATE
            values = {"name": row.row["name"]} if row.row else {}
            results.append(result(key, op=op, fingerprint=row.fingerprint, values=values))
        detector.store.record_results(run_id, detector.sync, None, results)

    return confirm


def fingerprints(db: Any, table: str, **sync_kwargs: Any) -> dict[str, str]:
    detector = ChangeDetector(
        db.warehouse, make_sync(db.table(table), **sync_kwargs), check_keys=False
    )
    with db.warehouse.engine.connect() as conn:
        return dict(conn.execute(detector.fingerprint_query()).tuples().all())


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_covers_mapped_record_id_and_soft_delete_columns_sorted() -> None:
    sync = make_sync("t", soft_delete_column="gone")
    assert fingerprint_columns(sync) == ["gone", "name", "score"]


def test_fingerprint_distinguishes_null_empty_null_text_and_separator_tricks(db: Any) -> None:
    db.run("CREATE TABLE {s}tricky (id INTEGER PRIMARY KEY, name TEXT, score TEXT)")
    cases = {
        1: (None, None),
        2: ("", None),
        3: ("NULL", None),
        4: ("\x1e", None),
        5: ("a\x1f", "b"),
        6: ("a", "\x1fb"),
        7: ("a\x1b", "\x1fb"),
        8: ("a", "\x1b\x1fb"),
    }
    for i, (name, score) in cases.items():
        db.run("INSERT INTO {s}tricky VALUES (:i, :n, :v)", {"i": i, "n": name, "v": score})
    fps = fingerprints(db, "tricky")
    assert len(set(fps.values())) == len(cases)
    assert fps == fingerprints(db, "tricky")  # stable across runs


def test_same_number_written_differently_fingerprints_the_same(db: Any) -> None:
    db.run("CREATE TABLE {s}nums (id INTEGER PRIMARY KEY, name TEXT, score NUMERIC(8,3))")
    db.run(
        "INSERT INTO {s}nums VALUES (1, 'x', 1.5), (2, 'x', 1.50), (3, 'x', 1.500), (4, 'x', 1.05)"
    )
    db.run("INSERT INTO {s}nums VALUES (5, 'x', 2), (6, 'x', 2.0)")
    fps = fingerprints(db, "nums")
    assert fps["1"] == fps["2"] == fps["3"] != fps["4"]
    assert fps["5"] == fps["6"]


@pytest.mark.postgres
def test_timestamptz_fingerprint_ignores_the_session_time_zone(pg_url: str, pg_schema: str) -> None:
    warehouse = Warehouse(pg_url, state_schema=pg_schema)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {pg_schema}.ts (id INTEGER PRIMARY KEY, name TEXT, score TIMESTAMPTZ)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO {pg_schema}.ts VALUES (1, 'x', '2024-05-01 12:00:00.123456+02')"
        )
    detector = ChangeDetector(warehouse, make_sync(f"{pg_schema}.ts"), check_keys=False)
    seen = set()
    for zone in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        with warehouse.engine.connect() as conn:
            conn.execute(text(f"SET TIME ZONE '{zone}'"))
            seen.add(conn.execute(detector.fingerprint_query()).one()[1])
    assert len(seen) == 1
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {pg_schema}.ts SET score = score + interval '1 microsecond'")
    with warehouse.engine.connect() as conn:
        assert conn.execute(detector.fingerprint_query()).one()[1] not in seen
    warehouse.dispose()


# --- change kinds ----------------------------------------------------------------------------


def test_new_changed_deleted_unchanged(db: Any, sync_all: SyncAll) -> None:
    seed(db)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    assert kinds(detector) == dict.fromkeys("123456", "new")
    sync_all(detector)
    assert kinds(detector) == {}
    counts = detector.counts()
    assert (counts.unchanged, counts.synced, counts.changes, counts.source_rows) == (6, 6, 0, 6)

    db.run("UPDATE {s}acct SET score = 99 WHERE id = 2")
    db.run("UPDATE {s}acct SET score = score WHERE id = 3")  # touched, same value
    db.run("DELETE FROM {s}acct WHERE id = 4")
    db.run("INSERT INTO {s}acct VALUES (7, 'acct 7', 1, '2024-01-01', 0)")
    found = changes(detector)
    assert {k: r.kind.value for k, r in found.items()} == {
        "2": "changed",
        "4": "deleted",
        "7": "new",
    }
    changed, deleted, new = found["2"], found["4"], found["7"]
    assert changed.row is not None
    assert float(changed.row["score"]) == 99
    assert changed.row["id"] == 2
    assert changed.row["name"] == "acct 2"
    assert changed.state is not None
    assert changed.state.values == {"name": "acct 2"}
    assert changed.fingerprint != changed.state.fingerprint
    assert deleted.row is None
    assert deleted.fingerprint is None
    assert deleted.state is not None
    assert new.state is None
    counts = detector.counts()
    assert (counts.new, counts.changed, counts.deleted, counts.unchanged) == (1, 1, 1, 4)
    assert (counts.synced, counts.source_rows) == (6, 6)


def test_archived_state_is_not_deleted_again_and_reappearing_row_is_changed(
    db: Any, sync_all: SyncAll
) -> None:
    seed(db, rows=3)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    sync_all(detector)
    db.run("DELETE FROM {s}acct WHERE id = 3")
    sync_all(detector, "run-2")  # archives 3
    assert kinds(detector) == {}
    assert detector.counts().synced == 2
    db.run("INSERT INTO {s}acct VALUES (3, 'acct 3', 4.5, '2024-01-01', 0)")
    back = changes(detector)["3"]
    assert back.kind is ChangeKind.CHANGED
    assert back.state is not None
    assert back.state.archived


def test_soft_deleted_rows(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=3)
    sync = make_sync(db.table("acct"), soft_delete_column="gone")
    detector = ChangeDetector(db.warehouse, sync)
    db.run("UPDATE {s}acct SET gone = 1 WHERE id = 3")
    assert kinds(detector) == {"1": "new", "2": "new"}  # never synced: ignored
    sync_all(detector)
    db.run("UPDATE {s}acct SET gone = 1 WHERE id = 2")
    assert kinds(detector) == {"2": "deleted"}
    assert detector.counts().deleted == 1


def test_full_refresh_reports_every_row_with_state(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=4)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    sync_all(detector)
    db.run("INSERT INTO {s}acct VALUES (9, 'acct 9', 1, '2024-01-01', 0)")
    db.run("DELETE FROM {s}acct WHERE id = 1")
    assert kinds(detector, full_refresh=True) == {
        "1": "deleted",
        "2": "changed",
        "3": "changed",
        "4": "changed",
        "9": "new",
    }


def test_only_keys_restricts_the_diff(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=5)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    sync_all(detector)
    db.run("UPDATE {s}acct SET name = 'renamed'")
    db.run("DELETE FROM {s}acct WHERE id IN (4, 5)")
    assert kinds(detector, only_keys={"2", "5", "404"}) == {"2": "changed", "5": "deleted"}
    counts = detector.counts(only_keys={"2", "5"})
    assert (counts.changed, counts.deleted, counts.synced, counts.source_rows) == (1, 1, 2, 1)
    assert kinds(detector, only_keys=set()) == {}


def test_time_window_partition_never_reports_hard_deletes(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=6)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct"), cursor_column="seen"))
    sync_all(detector)
    db.run("UPDATE {s}acct SET name = 'x'")
    db.run("DELETE FROM {s}acct WHERE id = 3")
    day = Partition("2024-01-02", start=date(2024, 1, 2), end=date(2024, 1, 3))
    # seen = 2024-01-0{1 + id % 3}: ids 1 and 4 fall on the 2nd
    assert kinds(detector, partition=day) == {"1": "changed", "4": "changed"}
    assert detector.counts(partition=day).deleted == 0


def test_hash_bucket_partitions_cover_everything_once_including_deletes(
    db: Any, sync_all: SyncAll
) -> None:
    seed(db, rows=6)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    sync_all(detector)
    db.run("UPDATE {s}acct SET name = 'x' WHERE id IN (1, 2)")
    db.run("DELETE FROM {s}acct WHERE id IN (5, 6)")
    everything = kinds(detector)
    merged: dict[str, str] = {}
    for bucket in range(3):
        part = Partition(f"b{bucket}", bucket=bucket, buckets=3)
        found = kinds(detector, partition=part)
        assert all(bucket_of(key, 3) == bucket for key in found)
        merged.update(found)
        assert detector.counts(partition=part).changes == len(found)
    assert merged == everything == {"1": "changed", "2": "changed", "5": "deleted", "6": "deleted"}


def test_composite_keys(db: Any, sync_all: SyncAll) -> None:
    db.run("CREATE TABLE {s}lines (order_id INTEGER, line TEXT, name TEXT, score NUMERIC)")
    db.run("INSERT INTO {s}lines VALUES (1, 'a', 'n', 1), (1, 'b', 'n', 2), (2, 'a', 'n', 3)")
    detector = ChangeDetector(db.warehouse, make_sync(db.table("lines"), pk=("order_id", "line")))
    sync_all(detector)
    db.run("UPDATE {s}lines SET score = 9 WHERE order_id = 1 AND line = 'b'")
    found = changes(detector)
    assert list(found) == ["1\x1fb"]
    assert found["1\x1fb"].row == {
        "order_id": 1,
        "line": "b",
        "name": "n",
        "score": found["1\x1fb"].row["score"],
    }


def test_query_source_diff(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=3)
    sync = make_sync(db.table("acct")).model_copy(deep=True)
    source = sync.source.model_copy(
        update={"table": None, "query": f"SELECT id, name, score FROM {db.table('acct')}"}
    )
    detector = ChangeDetector(db.warehouse, sync.model_copy(update={"source": source}))
    sync_all(detector)
    db.run("UPDATE {s}acct SET score = 7.25 WHERE id = 1")
    assert kinds(detector) == {"1": "changed"}


def test_duplicate_keys_stop_the_diff(db: Any) -> None:
    db.run("CREATE TABLE {s}nokey (id INTEGER, name TEXT, score NUMERIC)")
    db.run("INSERT INTO {s}nokey VALUES (1, 'a', 1), (1, 'b', 2)")
    detector = ChangeDetector(db.warehouse, make_sync(db.table("nokey")))
    with pytest.raises(SourceError, match="not unique"):
        detector.counts()


# --- streaming -------------------------------------------------------------------------------


def test_changes_stream_in_chunks_while_results_are_recorded(
    db: Any, result: Callable[..., RecordResult]
) -> None:
    seed(db, rows=25)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    sizes = []
    for chunk in detector.iter_changes(chunk_size=10):
        sizes.append(len(chunk))
        # Recording while the stream is open must not block (SQLite: WAL; PG: MVCC).
        detector.store.record_results(
            "run-1",
            detector.sync,
            None,
            [result(r.source_key, fingerprint=r.fingerprint) for r in chunk],
        )
    assert sizes == [10, 10, 5]
    assert detector.counts().unchanged == 25


def test_chunk_size_must_be_positive(sqlite_url: str) -> None:
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    with pytest.raises(ValueError, match="chunk_size"):
        next(ChangeDetector(warehouse, make_sync("acct")).iter_changes(chunk_size=0))


def test_state_tables_are_created_on_first_diff(sqlite_url: str) -> None:
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    ChangeDetector(warehouse, make_sync("acct")).counts()
    assert StateStore(warehouse).audit_rows() == []


# --- fingerprint encoding (length prefix, 64-bit hash) ---------------------------------------


def test_length_prefix_cannot_be_forged_by_values_that_look_like_prefixes(db: Any) -> None:
    db.run("CREATE TABLE {s}forge (id INTEGER PRIMARY KEY, name TEXT, score TEXT)")
    cases = {
        1: ("1:a", None),
        2: ("a", None),
        3: ("1:a\x1f1:b", None),
        4: ("a", "b"),
        5: ("3:a\x1fb", "\x1e"),
        6: ("a\x1fb", None),
        7: ("\x1e", "\x1e"),
        8: (None, "\x1e"),
        9: ("é", None),  # length counts bytes on PostgreSQL, code points on SQLite
        10: ("e", None),
    }
    for i, (name, score) in cases.items():
        db.run("INSERT INTO {s}forge VALUES (:i, :n, :v)", {"i": i, "n": name, "v": score})
    fps = fingerprints(db, "forge")
    assert len(set(fps.values())) == len(cases)


def test_fingerprint_is_a_64_bit_hash(db: Any) -> None:
    seed(db, rows=2)
    fps = fingerprints(db, "acct")
    if db.dialect == "postgresql":  # hashtextextended: a signed bigint as text
        assert all(-(2**63) <= int(fp) < 2**63 for fp in fps.values())
    elif db.dialect == "duckdb":  # hash(): an unsigned bigint as text
        assert all(0 <= int(fp) < 2**64 for fp in fps.values())
    elif db.dialect == "snowflake":  # HASH(): signed in Snowflake, unsigned in fakesnow
        assert all(-(2**63) <= int(fp) < 2**64 for fp in fps.values())
    else:  # blake2b, 8-byte digest
        assert all(len(fp) == 16 and int(fp, 16) >= 0 for fp in fps.values())


def test_sqlite_integral_real_and_integer_agree_but_text_does_not(sqlite_url: str) -> None:
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        # No declared type: no affinity, values keep the storage class they were given.
        conn.exec_driver_sql("CREATE TABLE loose (id INTEGER PRIMARY KEY, name, score)")
        conn.exec_driver_sql(
            "INSERT INTO loose VALUES (1, 'x', 2), (2, 'x', 2.0), (3, 'x', '2'),"
            " (4, 'x', 2.5), (5, 'x', x'32'), (6, 'x', 1e20), (7, 'x', NULL)"
        )
    detector = ChangeDetector(warehouse, make_sync("loose"), check_keys=False)
    with warehouse.engine.connect() as conn:
        fps = dict(conn.execute(detector.fingerprint_query()).tuples().all())
    warehouse.dispose()
    assert fps["1"] == fps["2"]
    assert len({fps[k] for k in "1345 67".replace(" ", "")}) == 6


def test_sqlite_canonical_forms() -> None:
    from kizen_sync.warehouse.dialects.sqlite import sqlite_canonical, sqlite_fingerprint

    assert [sqlite_canonical(v) for v in ("", "NULL", None, 7, 2.0, 0.1, b"\x00")] == [
        "0:",
        "4:NULL",
        "\x1e",
        "7",
        "2",
        "0.1",
        "x00",
    ]
    assert sqlite_fingerprint("a", None) != sqlite_fingerprint("a\x1f\x1e")
    assert sqlite_fingerprint(1, "b") == sqlite_fingerprint(1.0, "b")


def test_sqlite_computes_the_fingerprint_once_per_row(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, sync_all: SyncAll
) -> None:
    """SQLite flattening the source subquery would paste the call into every predicate."""
    from kizen_sync.warehouse.dialects import sqlite as source_module

    calls = [0]
    real = source_module.sqlite_fingerprint

    def counting(*values: Any) -> str:
        calls[0] += 1
        return real(*values)

    monkeypatch.setattr(source_module, "sqlite_fingerprint", counting)
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        conn.exec_driver_sql(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50)"
            " INSERT INTO acct SELECT n, 'a' || n, n FROM g"
        )
    detector = ChangeDetector(warehouse, make_sync("acct"))
    sync_all(detector)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE acct SET name = 'x' WHERE id <= 3")
    for run in (detector.counts, lambda: changes(detector)):
        calls[0] = 0
        run()
        assert calls[0] <= 50 + 3  # once per row, plus the output column of changed rows
    calls[0] = 0
    detector.archive_counts()
    assert calls[0] == 0
    warehouse.dispose()


# --- cheap guard counts and the stream tally -------------------------------------------------


def tally(detector: ChangeDetector, **kwargs: Any) -> ChangeTally:
    out = ChangeTally()
    for chunk in detector.iter_changes(**kwargs):
        for row in chunk:
            out.add(row)
    out.complete = True
    return out


def assert_cheap_counts_agree(detector: ChangeDetector, **kwargs: Any) -> None:
    full = detector.counts(kwargs.get("partition"), only_keys=kwargs.get("only_keys"))
    archive = detector.archive_counts(kwargs.get("partition"), only_keys=kwargs.get("only_keys"))
    assert (archive.deleted, archive.synced) == (full.deleted, full.synced)
    for refresh in (False, True):
        seen = tally(detector, full_refresh=refresh, **kwargs)
        assert seen.unchanged(archive) == full.unchanged
        assert seen.new == full.new
        assert seen.deleted == full.deleted


def test_archive_counts_and_tally_match_the_full_counts(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=8)
    detector = ChangeDetector(db.warehouse, make_sync(db.table("acct")))
    assert_cheap_counts_agree(detector)  # nothing synced yet
    sync_all(detector)
    assert_cheap_counts_agree(detector)  # everything unchanged
    db.run("UPDATE {s}acct SET score = 99 WHERE id IN (2, 3)")
    db.run("DELETE FROM {s}acct WHERE id IN (4, 8)")
    db.run("INSERT INTO {s}acct VALUES (9, 'acct 9', 1, '2024-01-01', 0)")
    assert_cheap_counts_agree(detector)
    sync_all(detector, "run-2")  # archives 4 and 8
    db.run("INSERT INTO {s}acct VALUES (4, 'acct 4', 6, '2024-01-01', 0)")  # restore
    db.run("UPDATE {s}acct SET name = 'y' WHERE id = 5")
    assert_cheap_counts_agree(detector)
    assert_cheap_counts_agree(detector, only_keys={"2", "4", "5", "8", "404"})
    for bucket in range(3):
        assert_cheap_counts_agree(
            detector, partition=Partition(f"b{bucket}", bucket=bucket, buckets=3)
        )


def test_archive_counts_with_soft_deletes_and_time_windows(db: Any, sync_all: SyncAll) -> None:
    seed(db, rows=6)
    sync = make_sync(db.table("acct"), soft_delete_column="gone", cursor_column="seen")
    detector = ChangeDetector(db.warehouse, sync)
    sync_all(detector)
    db.run("UPDATE {s}acct SET gone = 1 WHERE id IN (1, 2)")
    db.run("DELETE FROM {s}acct WHERE id = 3")
    db.run("UPDATE {s}acct SET name = 'z' WHERE id = 5")
    assert detector.archive_counts() == ArchiveCounts(deleted=3, synced=6)
    assert_cheap_counts_agree(detector)
    day = Partition("2024-01-02", start=date(2024, 1, 2), end=date(2024, 1, 3))
    assert detector.archive_counts(day).deleted == 1  # id 1: soft-deleted in the window
    assert_cheap_counts_agree(detector, partition=day)
