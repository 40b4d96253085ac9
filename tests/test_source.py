from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from kizen_sync.config import SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.models import Partition
from kizen_sync.warehouse import Source, Warehouse, bucket_of, decode_key, encode_key
from kizen_sync.warehouse.constructs import KeyBucket
from tests.conftest import Db, duckdb_url


def make_sync(**source: Any) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "name": "people",
            "object": "client_client",
            "source": {"primary_key": ["id"], **source},
            "identity": {"match_on": "email"},
            "fields": [
                {"column": "email", "field": "email"},
                {"column": "name", "field": "first_name"},
            ],
        }
    )


def seed_people(db: Any) -> None:
    db.run("CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT, name TEXT, seen TEXT)")
    db.run(
        "INSERT INTO {s}people VALUES (1, 'a@x.io', 'Ann', '2024-01-01 10:00:00'),"
        " (2, 'b@x.io', 'Bob', '2024-01-02T00:00:00'), (3, 'c@x.io', NULL, '2024-01-03 00:00:00')"
    )


def test_injected_table_name_is_rejected_before_any_sql(sqlite_url: str) -> None:
    sync = make_sync(table="people")
    evil_source = sync.source.model_copy(update={"table": "people; drop table x"})
    evil = sync.model_copy(update={"source": evil_source})
    warehouse = Warehouse(sqlite_url)
    statements: list[str] = []
    event.listen(warehouse.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pytest.raises(SourceError, match="not a plain table name") as info:
        Source(warehouse, evil)
    assert info.value.context["key"] == "source.table"
    assert statements == []


def test_injected_column_name_is_rejected_before_any_sql(sqlite_url: str) -> None:
    sync = make_sync(table="people")
    evil = sync.model_copy(
        update={"source": sync.source.model_copy(update={"cursor_column": "x) or 1=1 --"})}
    )
    warehouse = Warehouse(sqlite_url)
    statements: list[str] = []
    event.listen(warehouse.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pytest.raises(SourceError, match=r"source\.cursor_column"):
        Source(warehouse, evil)
    assert statements == []


def test_unknown_columns_are_named_with_their_keys_and_the_known_columns(db: Any) -> None:
    seed_people(db)
    sync = make_sync(
        table=db.table("people"), cursor_column="updated", soft_delete_column="deleted"
    )
    with pytest.raises(SourceError) as info:
        Source(db.warehouse, sync)
    message = str(info.value)
    assert "sync 'people'" in message
    assert "source.cursor_column: unknown column 'updated'" in message
    assert "source.soft_delete_column: unknown column 'deleted'" in message
    assert "email, id, name, seen" in message
    assert info.value.context["unknown"] == ["updated", "deleted"]


def test_unknown_table_lists_the_tables(db: Any) -> None:
    seed_people(db)
    with pytest.raises(SourceError, match=r"table '.*peple' not found \(tables: .*people"):
        Source(db.warehouse, make_sync(table=db.table("peple")))


def test_a_duckdb_table_in_a_named_schema_is_found_and_a_missing_schema_is_named(
    tmp_path: Path,
) -> None:
    warehouse = Warehouse(duckdb_url(tmp_path))
    try:
        with warehouse.engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA analytics"))
        seed_people(Db(warehouse, "analytics"))
        source = Source(warehouse, make_sync(table="analytics.people"))
        source.check_keys()
        assert source.row_columns == ["id", "email", "name"]
        with pytest.raises(SourceError, match="schema 'nope' does not exist"):
            Source(warehouse, make_sync(table="nope.people"))
    finally:
        warehouse.dispose()


def test_null_and_duplicate_keys_are_reported_with_examples(db: Any) -> None:
    db.run("CREATE TABLE {s}dupes (id TEXT, email TEXT, name TEXT)")
    db.run("INSERT INTO {s}dupes VALUES ('k1', 'a', 'A'), ('k1', 'b', 'B'), ('k2', 'c', 'C')")
    source = Source(db.warehouse, make_sync(table=db.table("dupes")))
    with pytest.raises(SourceError, match=r"not unique, e\.g\. 'k1' x2") as info:
        source.check_keys()
    assert info.value.context["examples"] == ["k1"]
    db.run("DELETE FROM {s}dupes WHERE email = 'b'")
    source.check_keys()
    db.run("INSERT INTO {s}dupes VALUES (NULL, 'd', 'D')")
    with pytest.raises(SourceError, match="is NULL in 1"):
        source.check_keys()


def test_query_source_reads_its_columns_from_the_query(db: Any) -> None:
    seed_people(db)
    query = f"SELECT id, email, upper(name) AS name FROM {db.table('people')} WHERE id < 3;"
    source = Source(db.warehouse, make_sync(query=query))
    assert source.row_columns == ["id", "email", "name"]
    with db.warehouse.engine.connect() as conn:
        rows = conn.execute(select(source.key_expr(), source.column("name"))).all()
    assert sorted(rows) == [("1", "ANN"), ("2", "BOB")]


def test_query_source_missing_a_configured_column(db: Any) -> None:
    seed_people(db)
    sync = make_sync(query=f"SELECT id, email FROM {db.table('people')}")
    with pytest.raises(
        SourceError,
        match=r"fields\[1\]\.column: unknown column 'name' \(columns of query: email, id\)",
    ):
        Source(db.warehouse, sync)


def test_failing_query_names_the_database_error_and_masks_the_password(sqlite_url: str) -> None:
    with pytest.raises(SourceError, match="no such table: nowhere") as info:
        Source(Warehouse(sqlite_url), make_sync(query="SELECT * FROM nowhere"))
    assert info.value.context["key"] == "source.query"


@pytest.mark.postgres
def test_failing_pg_query_masks_the_password(pg_url: str) -> None:
    # Trust authentication accepts any password, so the URL below connects.
    url = pg_url.replace("postgres@", "postgres:hunter2secret@")
    with pytest.raises(SourceError) as info:
        Source(Warehouse(url), make_sync(query="SELECT * FROM no_such_table_at_all"))
    message = str(info.value)
    assert 'relation "no_such_table_at_all" does not exist' in message
    assert "hunter2secret" not in message
    assert "postgres:***@127.0.0.1" in message


def test_composite_keys_match_in_sql_and_python(db: Any) -> None:
    db.run("CREATE TABLE {s}lines (order_id INTEGER, line TEXT, email TEXT, name TEXT)")
    db.run("INSERT INTO {s}lines VALUES (42, 'a', 'x', 'y'), (7, 'b|c', 'x', 'y')")
    sync = make_sync(table=db.table("lines"), primary_key=["order_id", "line"])
    source = Source(db.warehouse, sync)
    with db.warehouse.engine.connect() as conn:
        keys = set(conn.execute(select(source.key_expr())).scalars())
    assert keys == {encode_key([42, "a"]), encode_key([7, "b|c"])}
    assert decode_key(encode_key([42, "a"])) == ["42", "a"]
    assert encode_key([42]) == "42"


def test_hash_buckets_agree_between_sql_and_python(db: Any) -> None:
    seed_people(db)
    source = Source(db.warehouse, make_sync(table=db.table("people")))
    with db.warehouse.engine.connect() as conn:
        rows = conn.execute(select(source.key_expr(), KeyBucket(source.key_expr(), 3))).all()
    assert rows
    assert all(bucket == bucket_of(key, 3) for key, bucket in rows)


def test_time_window_partitions_compare_normalised_timestamps(sqlite_url: str) -> None:
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, name TEXT, seen TEXT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO people VALUES (1, 'a', 'A', '2024-01-01 10:00:00'),"
            " (2, 'b', 'B', '2024-01-02T00:00:00'),"
            " (3, 'c', 'C', '2024-01-01T23:30:00-02:00')"
        )
    source = Source(warehouse, make_sync(table="people", cursor_column="seen"))

    def keys(partition: Partition) -> set[str]:
        where = source.partition_clause(partition)
        assert where is not None
        with warehouse.engine.connect() as conn:
            return set(conn.execute(select(source.key_expr()).where(where)).scalars())

    day1 = Partition("2024-01-01", start=date(2024, 1, 1), end=date(2024, 1, 2))
    assert keys(day1) == {"1"}  # row 3 is 01:30 UTC on the 2nd
    aware = Partition(
        "x", start=datetime(2024, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=1))), end=None
    )
    assert keys(aware) == {"2", "3"}
    assert keys(Partition("y", start=None, end=datetime(2024, 1, 2, tzinfo=UTC))) == {"1"}


def test_partitions_need_exactly_one_kind(sqlite_url: str) -> None:
    warehouse = Warehouse(sqlite_url)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    source = Source(warehouse, make_sync(table="people"))
    with pytest.raises(SourceError, match="needs either"):
        source.partition_clause(Partition("p", start=date(2024, 1, 1), bucket=1, buckets=2))
    with pytest.raises(SourceError, match="need a cursor column"):
        source.partition_clause(Partition("p", start=date(2024, 1, 1)))
    with pytest.raises(SourceError, match=r"bucket must be in \[0, buckets\)"):
        source.partition_clause(Partition("p", bucket=2, buckets=2))


@pytest.mark.postgres
def test_pg_sessions_run_in_utc(pg_url: str) -> None:
    warehouse = Warehouse(pg_url)
    with warehouse.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW TimeZone").scalar_one() == "UTC"
    warehouse.dispose()
