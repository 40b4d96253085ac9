"""Snowflake, BigQuery and Redshift: every statement the connector issues, compiled and parsed.

No live BigQuery or Redshift is reachable from CI, so these warehouses are "compiled, not yet
run live": each statement kizen-sync sends (the DDL files, the diff and its guards, the key
checks, the state, audit and run writes, the monitoring reads) is compiled by the real
SQLAlchemy dialect of the warehouse, with its values inlined, and parsed by sqlglot's grammar
of that warehouse. A statement sqlglot cannot parse, or only as an opaque command, fails.
Snowflake also runs live against fakesnow (``tests/warehouse/test_snowflake_fake.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlglot
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, Numeric, Table, Text, insert
from sqlalchemy.sql.expression import Executable
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from kizen_sync.config import SyncConfig
from kizen_sync.models import Partition
from kizen_sync.warehouse import ChangeDetector, Source, StateStore, Warehouse
from kizen_sync.warehouse.dialects.batch import RowsUpsert, insert_statements, upsert_statements
from kizen_sync.warehouse.sqlfiles import migrations, render, split_statements, sql_dir

URLS = {
    "snowflake": "snowflake://user:pw@account/analytics/public?warehouse=wh",
    "bigquery": "bigquery://project/analytics",
    "redshift": "redshift+redshift_connector://user:pw@cluster.example:5439/dev",
}

SYNC = SyncConfig.model_validate(
    {
        "name": "accounts",
        "object": "accounts",
        "source": {
            "table": "crm.accounts",
            "primary_key": ["account_id", "region"],
            "cursor_column": "updated_at",
            "soft_delete_column": "is_deleted",
        },
        "identity": {"record_id_column": "kizen_id"},
        "fields": [
            {"column": "name", "field": "name"},
            {"column": "employees", "field": "employees"},
            {"column": "health", "field": "health_score"},
            {"column": "active", "field": "active"},
            {"column": "renewal", "field": "renewal_date"},
        ],
    }
)


def accounts() -> Table:
    """The source table as the warehouse would reflect it."""
    return Table(
        "accounts",
        MetaData(),
        Column("account_id", Integer),
        Column("region", Text),
        Column("kizen_id", Text),
        Column("name", Text),
        Column("employees", Integer),
        Column("health", Numeric(6, 2)),
        Column("active", Boolean),
        Column("renewal", DateTime(timezone=True)),
        Column("is_deleted", Boolean),
        Column("updated_at", DateTime()),
        schema="crm",
    )


@pytest.fixture(params=sorted(URLS))
def warehouse(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Warehouse]:
    """A warehouse whose engine is never connected (BigQuery gets anonymous credentials)."""
    if request.param == "bigquery":
        from google.auth.credentials import AnonymousCredentials

        monkeypatch.setattr(
            "google.auth.default", lambda *a, **k: (AnonymousCredentials(), "project")
        )
    wh = Warehouse(URLS[request.param], state_schema="kizen")
    yield wh
    wh.dispose()


def sql_of(warehouse: Warehouse, statement: Any) -> str:
    compiled = statement.compile(
        dialect=warehouse.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def parse(warehouse: Warehouse, sql: str) -> exp.Expression:
    """sqlglot's tree of ``sql`` in the warehouse's grammar; fails on anything it cannot read."""
    trees = sqlglot.parse(sql, read=warehouse.dialect, error_level=ErrorLevel.RAISE)
    assert len(trees) == 1, sql
    tree = trees[0]
    assert tree is not None, sql
    assert not isinstance(tree, exp.Command), f"parsed only as an opaque command:\n{sql}"
    return tree


def detector(warehouse: Warehouse) -> ChangeDetector:
    source = Source.from_table(warehouse, SYNC, accounts())
    return ChangeDetector(warehouse, SYNC, source, check_keys=False)


PARTITIONS = [
    None,
    Partition(key="b3", bucket=3, buckets=8),
    Partition(
        key="2024-05-01",
        start=datetime(2024, 5, 1, tzinfo=UTC),
        end=datetime(2024, 5, 2, tzinfo=UTC),
    ),
]


def diff_statements(warehouse: Warehouse) -> Iterator[Executable]:
    found = detector(warehouse)
    for partition in PARTITIONS:
        for keys in (None, ["1\x1fnorth", "2\x1fsouth"]):
            yield from found.archive_count_statements(partition, keys)
            yield from found.count_statements(partition, keys)
            for full in (False, True):
                yield from found.change_statements(partition, keys, full_refresh=full)
        yield from found.source.key_check_statements(partition)
        yield found.fingerprint_query(partition)


def test_every_diff_statement_compiles_and_parses(warehouse: Warehouse) -> None:
    statements = list(diff_statements(warehouse))
    assert len(statements) > 20
    for statement in statements:
        tree = parse(warehouse, sql_of(warehouse, statement))
        assert isinstance(tree, exp.Select | exp.Union | exp.Except), tree.sql()


def test_the_fingerprint_uses_the_warehouse_hash(warehouse: Warehouse) -> None:
    sql = sql_of(warehouse, detector(warehouse).fingerprint_query())
    native = {"snowflake": "HASH(", "bigquery": "FARM_FINGERPRINT(", "redshift": "FNV_HASH("}
    assert native[warehouse.dialect] in sql
    parse(warehouse, sql)


def test_every_ddl_statement_parses(warehouse: Warehouse) -> None:
    qualify = warehouse.sql_dialect.qualify
    files = migrations(warehouse.dialect)
    assert [f.version for f in files] == [f.version for f in migrations("postgresql")]
    bootstrap = sql_dir() / warehouse.dialect / "schema_version.sql"
    texts = [bootstrap.read_text(encoding="utf-8")]
    texts += [f.path.read_text(encoding="utf-8") for f in files]
    for text in texts:
        rendered = render(text, warehouse.state_schema, warehouse.table_prefix, qualify)
        for statement in split_statements(rendered):
            tree = parse(warehouse, statement)
            assert isinstance(tree, exp.Create | exp.Alter), statement


def _now() -> datetime:
    return datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def write_statements(warehouse: Warehouse) -> Iterator[Executable]:
    store = StateStore(warehouse)
    tables, bind_type = store.tables, warehouse.sql_dialect.bind_type
    state_rows = [
        {
            "sync_name": "accounts",
            "source_key": f"{i}\x1fnorth",
            "kizen_id": None if i % 2 else f"rec-{i}",
            "run_id": "run-1",
            "updated_at": _now(),
            "fingerprint": f"{i}",
            "values_json": '{"name": "O\'Brien"}',
            "identity": f"s{i}@example.com",
            "archived": False,
        }
        for i in range(3)
    ]
    for keep in (False, True):
        upsert = store.state_upsert(keep_values=keep)
        assert isinstance(upsert, RowsUpsert)
        yield from upsert_statements(upsert, state_rows)
    run, rows = store.run_upsert(
        {"run_id": "run-1", "sync_name": "accounts", "status": "running", "started_at": _now()}
    )
    yield from upsert_statements(run, rows)
    audit = [
        {
            "run_id": "run-1",
            "sync_name": "accounts",
            "partition_key": None,
            "source_key": "1\x1fnorth",
            "kizen_id": "rec-1",
            "operation": "update",
            "outcome": "success",
            "http_status": 200,
            "error_class": None,
            "error_message": None,
            "field_errors": None,
            "changed_fields": "{}",
            "values_hash": None,
            "attempt": 1,
            "started_at": _now(),
            "finished_at": _now(),
        }
    ]
    if warehouse.dialect == "bigquery":  # no sequences: ids from kizen-sync, batched inserts
        yield from insert_statements(tables.audit, [{"id": 1, **audit[0]}], bind_type)
    else:  # the connector's executemany: one INSERT ... VALUES
        yield insert(tables.audit).values(audit)
    yield store.forget_statement("accounts", ["1\x1fnorth", "2\x1fsouth"])
    yield from store.read_statements("accounts", ["1\x1fnorth"])


def test_every_state_statement_compiles_and_parses(warehouse: Warehouse) -> None:
    statements = list(write_statements(warehouse))
    kinds = set()
    for statement in statements:
        tree = parse(warehouse, sql_of(warehouse, statement))
        kinds.add(type(tree).__name__)
    expected = {"Insert", "Delete", "Select"} | (
        {"Update"} if warehouse.dialect == "redshift" else {"Merge"}
    )
    assert expected <= kinds
