"""BigQuery through ``sqlalchemy-bigquery``: ``FARM_FINGERPRINT``, ``MERGE``, ``UNIX_MICROS``.

Compiled, not yet run live: CI compiles every statement the connector issues with the real
dialect and parses it with sqlglot's BigQuery grammar, but no BigQuery project is reachable
from CI (``tests/warehouse/test_compiled_dialects.py``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import TIMESTAMP, Connection, DateTime, Float, Table, bindparam, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, Char, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import Dialect, lit
from kizen_sync.warehouse.dialects.batch import RowsUpsert, insert_statements, run_upsert

__all__ = ["BigQueryDialect"]

_IDS = itertools.count()
_IDS_LOCK = threading.Lock()


def _next_ids(n: int) -> list[int]:
    """``n`` increasing ids: microseconds since the epoch times 1000 plus a counter.

    BigQuery has no sequences; the monitoring views order a record's attempts by id, and the
    attempts of one record are written by one process, one after the other.
    """
    with _IDS_LOCK:
        base = time.time_ns() // 1000 * 1000
        return [base + next(_IDS) % 1000 for _ in range(n)]


@compiles(Char, "bigquery")
def _char(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CODE_POINTS_TO_STRING([{compiler.process(element.clauses, **kw)}])"


@compiles(KeyBucket, "bigquery")
def _bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    return f"MOD(CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5({key})), 1, 7)) AS INT64), {buckets})"


@compiles(RowHash, "bigquery")
def _row_hash(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    parts = compiler.process(element.clauses, **kw)
    return (
        f"CAST(FARM_FINGERPRINT(ARRAY_TO_STRING([{parts}], CODE_POINTS_TO_STRING([{SEPARATOR}])))"
        " AS STRING)"
    )


class BigQueryDialect(Dialect):
    """BigQuery (``bigquery://project/dataset``; credentials from the environment, as the
    Google client library finds them). The state schema is a dataset.

    ``FARM_FINGERPRINT`` (64-bit, documented as stable) hashes the canonical text; epochs come
    from ``UNIX_MICROS`` (a DATETIME is read as UTC), text lengths from ``BYTE_LENGTH``, JSON
    from ``TO_JSON_STRING``. Upserts are ``MERGE`` batches; audit ids are assigned by
    kizen-sync (no sequences). BigQuery has no locks: the DDL is idempotent.
    """

    name = "bigquery"
    ddl_quotes_like_sqlalchemy = True
    enforces_primary_keys = False
    label = "BigQuery"

    def epoch_micros(self, col: ColumnElement[Any]) -> ColumnElement[int]:
        """``UNIX_MICROS(col)``; a DATE or DATETIME through ``TIMESTAMP()`` (UTC)."""
        kind = col.type
        if isinstance(kind, DateTime) and kind.timezone:
            return func.unix_micros(col)
        return func.unix_micros(func.timestamp(col))

    def cursor_value(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """``TIMESTAMP(col)``: a DATE or DATETIME compared as UTC (BigQuery does not compare
        them with a TIMESTAMP).
        """
        kind = col.type
        if isinstance(kind, DateTime) and kind.timezone:
            return col
        return func.timestamp(col, type_=TIMESTAMP(timezone=True))

    def cursor_bound(self, value: datetime | date) -> Any:
        """The bound as a TIMESTAMP (a date is its UTC midnight)."""
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return bindparam(None, value, type_=TIMESTAMP(timezone=True))

    def int_div(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``DIV(a, b)`` (``/`` is float division)."""
        return func.div(value, divisor)

    def octet_length(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """``BYTE_LENGTH``."""
        return func.byte_length(value)

    def is_nan(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """``IS_NAN``."""
        return func.is_nan(col)

    def mantissa(self, native: ColumnElement[str]) -> ColumnElement[str]:
        """``REGEXP_EXTRACT(text, '^[^e]*')`` (no SPLIT_PART in BigQuery)."""
        return func.regexp_extract(native, lit("^[^e]*"))

    def infinity(self) -> ColumnElement[float]:
        """``CAST('inf' AS FLOAT64)``."""
        return cast(lit("inf"), Float)

    def json_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """``TO_JSON_STRING``."""
        return func.to_json_string(col)

    def bind_type(self, kind: TypeEngine[Any]) -> TypeEngine[Any]:
        """``TIMESTAMP`` for an aware timestamp (SQLAlchemy's BigQuery DateTime is DATETIME)."""
        if isinstance(kind, DateTime) and kind.timezone:
            return TIMESTAMP(timezone=True)
        return kind

    def insert_rows(
        self, conn: Connection, stmt: Executable, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        """``MERGE`` batches for upserts; plain inserts as ``INSERT ... SELECT ... UNION
        ALL`` batches too (the DB-API would send one statement per row), with ids assigned
        here when the table's key is an id BigQuery cannot generate.
        """
        if isinstance(stmt, RowsUpsert):
            run_upsert(conn, stmt, rows)
            return
        if "id" in table.c and table.c.id.primary_key and "id" not in rows[0]:
            rows = [{"id": i, **row} for i, row in zip(_next_ids(len(rows)), rows, strict=True)]
        for statement in insert_statements(table, rows, self.bind_type):
            conn.execute(statement)

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``MERGE INTO ... USING (rows) ...``."""
        return RowsUpsert(table, keys, update, merge=True, bind_type=self.bind_type)
