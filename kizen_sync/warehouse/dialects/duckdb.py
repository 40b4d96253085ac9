"""DuckDB (and MotherDuck) through ``duckdb-engine``: native ``hash``, hash joins, ``//``.

DuckDB runs in the process that opens it, so the whole diff is a vectorised hash join in
this process, and ``hash()`` (64-bit, no Python call per row) is the fingerprint. A DuckDB
file is locked by the process that opened it: a sync and anything else writing to the same
file must not run at the same time (the migration lock below covers this process's threads).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Insert,
    Numeric,
    Table,
    Text,
    Time,
    cast,
    column,
    func,
    select,
)
from sqlalchemy import table as sql_table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import lit
from kizen_sync.warehouse.dialects.batch import RowsUpsert, upsert_from
from kizen_sync.warehouse.dialects.catalog import InformationSchemaDialect

__all__ = ["DuckDBDialect", "duckdb_type"]

_MIGRATION_LOCK = threading.Lock()
#: DuckDB's memory limit unless the URL sets one (see DuckDBDialect.prepare_connection).
MEMORY_LIMIT = "32MB"

# DuckDB type names (as information_schema and cursor descriptions spell them) -> the type
# that picks the fingerprint format; anything else is fingerprinted through its text form.
_TYPES: list[tuple[re.Pattern[str], Callable[[], TypeEngine[Any]]]] = [
    (re.compile(r"^TIMESTAMP( WITH TIME ZONE|TZ)$"), lambda: DateTime(timezone=True)),
    (re.compile(r"^(TIMESTAMP|DATETIME|TIMESTAMP_(S|MS|NS|US))$"), DateTime),
    (re.compile(r"^DATE$"), Date),
    (re.compile(r"^TIME$"), Time),
    (re.compile(r"^BOOL(EAN)?$"), Boolean),
    (re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|INT[1248]|U?HUGEINT|LONG)$"), BigInteger),
    (re.compile(r"^(DOUBLE|FLOAT|REAL|FLOAT[48])$"), Float),
    (re.compile(r"^(DECIMAL|NUMERIC)(\(\d+, ?\d+\))?$"), Numeric),
    (re.compile(r"^JSON$"), JSON),
    (re.compile(r"^(VARCHAR|TEXT|STRING|CHAR|BPCHAR)(\(\d+\))?$"), Text),
]


def duckdb_type(name: str) -> TypeEngine[Any]:
    """The SQLAlchemy type of a DuckDB type name (``DECIMAL(10,2)``, ``TIMESTAMP WITH TIME
    ZONE``, ...); :class:`NullType` when the name is none of the fingerprinted kinds.
    """
    upper = name.strip().upper()
    for pattern, make in _TYPES:
        if pattern.match(upper):
            return make()
    return NullType()


@compiles(KeyBucket, "duckdb")
def _bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST('0x' || substr(md5({key}), 1, 7) AS INTEGER) % {buckets})"


@compiles(RowHash, "duckdb")
def _row_hash(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    return (
        f"CAST(hash(concat_ws(chr({SEPARATOR}), {compiler.process(element.clauses, **kw)}))"
        " AS VARCHAR)"
    )


class DuckDBDialect(InformationSchemaDialect):
    """DuckDB 1.1+ (``duckdb:///path.duckdb``, ``duckdb:///md:db`` for MotherDuck).

    The canonical text is the PostgreSQL form (see :class:`.base.Dialect.canonical_text`):
    timestamps from ``epoch_us``, integer division with ``//``, floats rewritten from
    DuckDB's repr-like text, text length-prefixed by ``strlen`` (bytes in DuckDB). JSON is
    fingerprinted as DuckDB stores it (minified, keys in their original order): unlike
    PostgreSQL's jsonb, a document whose keys come back reordered is a change here.
    """

    name = "duckdb"
    label = "DuckDB"
    catalog_clause = "table_catalog = current_database()"

    def prepare_connection(self, dbapi_conn: Any) -> None:
        """Sessions in UTC, so that ``timestamptz`` values come back in UTC; and unless the
        URL sets them (``?memory_limit=4GB&threads=8``), a 32 MB memory limit and one thread.

        DuckDB runs inside this process, so its buffers count in the sync's memory: by default
        a 1M-row diff took 445 MiB at its peak; with these limits 243 MiB (the rest spills to
        DuckDB's temporary directory), for 1.8 s more. Figures in ``bench/README.md``.
        """
        dbapi_conn.execute("SET TimeZone = 'UTC'")
        query = self.engine.url.query
        if "memory_limit" not in query:
            dbapi_conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        if "threads" not in query:
            dbapi_conn.execute("SET threads = 1")

    def query_column_type(self, type_code: Any) -> TypeEngine[Any]:
        """Types of a query's columns from DuckDB's type objects (their names)."""
        return duckdb_type(str(type_code))

    def column_type(self, data_type: str, scale: int | None) -> TypeEngine[Any]:
        """DuckDB's type names (:func:`duckdb_type`)."""
        return duckdb_type(data_type)

    def epoch_micros(self, col: ColumnElement[Any]) -> ColumnElement[int]:
        """``epoch_us`` (exact; dates count from their midnight)."""
        return func.epoch_us(col)

    def int_div(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``//`` (``/`` is float division in DuckDB)."""
        return value.op("//")(divisor)

    def int_mod(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``%``."""
        return value.op("%")(divisor)

    def octet_length(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """``strlen``: the byte count (``length`` counts characters)."""
        return func.strlen(value)

    def is_nan(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """``isnan``."""
        return func.isnan(col)

    def infinity(self) -> ColumnElement[float]:
        """``'inf'::DOUBLE``."""
        return cast(lit("inf"), Float)

    def json_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """``json(col)``: minified."""
        return cast(func.json(col), Text)

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """One creator per process (the file lock keeps other processes out), then the
        state schema if it is missing; committed before the lock is released, since DuckDB
        fails a second transaction that creates the same table.
        """
        with _MIGRATION_LOCK:
            if state_schema:
                quoted = conn.dialect.identifier_preparer.quote_identifier(state_schema)
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            yield
            conn.commit()  # before the next creator may look

    def insert_rows(
        self, conn: Connection, stmt: Executable, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        """The rows as a pandas frame registered on the connection, inserted with one
        ``INSERT ... SELECT`` (DuckDB runs ``executemany`` one row at a time, ~4 ms each).
        """
        if not isinstance(stmt, Insert | RowsUpsert):
            super().insert_rows(conn, stmt, table, rows)
            return
        # Imported here, not at the top: every dialect module is loaded with the package, and
        # pandas would otherwise cost each process that never writes to DuckDB (a Dagster run
        # worker, every CLI command) about 0.3 s of start-up.
        import pandas

        names = list(rows[0])
        view = f"kizen_rows_{uuid.uuid4().hex}"
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.register(view, pandas.DataFrame.from_records(rows, columns=names))
        try:
            frame = select(*(cast(column(n), table.c[n].type).label(n) for n in names))
            frame = frame.select_from(sql_table(view))
            if isinstance(stmt, RowsUpsert):
                for statement in upsert_from(stmt, frame.subquery("s")):
                    conn.execute(statement)
            else:
                conn.execute(stmt.from_select(names, frame))
        finally:
            raw.unregister(view)

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``UPDATE ... FROM`` then ``INSERT ... WHERE NOT EXISTS`` from the rows' frame.

        Not ``ON CONFLICT``: that needs a primary-key index, and DuckDB keeps such an index
        (ART) wholly in memory, so a state table of millions of rows would not fit under the
        memory limit; the state and parked tables have no index in DuckDB (one run per sync
        at a time, the lease, keeps their keys unique).
        """
        return RowsUpsert(table, keys, update, merge=False)
