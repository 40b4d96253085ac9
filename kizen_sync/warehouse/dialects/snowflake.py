"""Snowflake through ``snowflake-sqlalchemy``: ``HASH``, ``MERGE``, epoch parts.

Tested in CI against ``fakesnow`` (a local Snowflake fake that answers the real connector
over HTTP and runs the SQL on DuckDB, after translating it): every statement here is plain
Snowflake SQL, chosen among the spellings that both Snowflake documents and fakesnow runs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    MetaData,
    Numeric,
    Table,
    Text,
    Time,
    cast,
    func,
    literal_column,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, Char, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import Dialect, lit
from kizen_sync.warehouse.dialects.batch import RowsUpsert, run_upsert

__all__ = ["SnowflakeDialect"]

_MIGRATION_LOCK = threading.Lock()

# snowflake-connector-python's type codes (snowflake.connector.constants.FIELD_TYPES order).
_TYPE_CODES: dict[int, Callable[[], TypeEngine[Any]]] = {
    0: Numeric,  # FIXED: NUMBER(p, s); scale 0 is still an integer text
    1: Float,  # REAL
    2: Text,  # TEXT
    3: Date,
    4: DateTime,  # TIMESTAMP (an alias, NTZ by default)
    5: JSON,  # VARIANT
    6: lambda: DateTime(timezone=True),  # TIMESTAMP_LTZ
    7: lambda: DateTime(timezone=True),  # TIMESTAMP_TZ
    8: DateTime,  # TIMESTAMP_NTZ
    9: JSON,  # OBJECT
    10: JSON,  # ARRAY
    12: Time,
    13: Boolean,
}


def _column_type(name: str, scale: int | None) -> TypeEngine[Any]:
    """The type of an ``information_schema.columns.data_type``; NUMBER(p, 0) is an integer."""
    upper = name.upper()
    if upper in ("NUMBER", "DECIMAL", "NUMERIC"):
        return BigInteger() if not scale else Numeric()
    kinds: dict[str, Callable[[], TypeEngine[Any]]] = {
        "FLOAT": Float,
        "TEXT": Text,
        "BOOLEAN": Boolean,
        "DATE": Date,
        "TIME": Time,
        "TIMESTAMP_TZ": lambda: DateTime(timezone=True),
        "TIMESTAMP_LTZ": lambda: DateTime(timezone=True),
        "TIMESTAMP_NTZ": DateTime,
        "VARIANT": JSON,
        "OBJECT": JSON,
        "ARRAY": JSON,
    }
    make = kinds.get(upper)
    return make() if make is not None else NullType()


@compiles(KeyBucket, "snowflake")
def _bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    # The first 7 hex digits of md5, digit by digit: TO_NUMBER(.., 'XXXXXXX') would do, but
    # fakesnow does not run it, and the two must agree.
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    digits = " + ".join(
        f"(POSITION(SUBSTR(MD5({key}), {i + 1}, 1), '0123456789abcdef') - 1) * {16 ** (6 - i)}"
        for i in range(7)
    )
    return f"MOD({digits}, {buckets})"


@compiles(Char, "snowflake")
def _char(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    # Our own constant code points, written into the SQL: a bound parameter inside CHR()
    # gains nothing, and fakesnow miscounts parameters nested that deep.
    (point,) = (getattr(c, "value", None) for c in element.clauses)
    if not isinstance(point, int):
        raise TypeError("Char takes an integer code point")
    return f"CHR({point})"


@compiles(RowHash, "snowflake")
def _row_hash(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    joined = f"CONCAT_WS(CHR({SEPARATOR}), {compiler.process(element.clauses, **kw)})"
    return f"TO_VARCHAR(HASH({joined}))"


class SnowflakeDialect(Dialect):
    """Snowflake (``snowflake://user:${PASSWORD}@account/database/schema?warehouse=wh``).

    ``HASH`` (64-bit) fingerprints the canonical text; numbers are ``NUMBER(p, s)`` whatever
    their scale (trailing zeros trimmed, so ``NUMBER(10, 0)`` renders as the integer),
    timestamps come from ``DATE_PART(EPOCH_MICROSECOND, ...)``; a VARIANT/OBJECT/ARRAY is
    rendered by ``TO_JSON`` (keys sorted by Snowflake). Snowflake has no row locks nor
    advisory locks: the state tables are created with idempotent statements only.
    """

    name = "snowflake"
    ddl_quotes_like_sqlalchemy = True
    enforces_primary_keys = False
    label = "Snowflake"

    def signature(self, value: str) -> ColumnElement[str]:
        """Written into the SQL (16 hex digits, checked): fakesnow miscounts bound parameters
        of a FULL OUTER JOIN's subquery.
        """
        if not re.fullmatch(r"[0-9a-f]{16}", value):
            raise ValueError(f"not a mapping signature: {value!r}")
        return lit(value)

    def query_column_type(self, type_code: Any) -> TypeEngine[Any]:
        """Types of a query's columns from the connector's type codes."""
        make = _TYPE_CODES.get(type_code) if isinstance(type_code, int) else None
        return make() if make is not None else NullType()

    # Reflection through INFORMATION_SCHEMA: one query each, names folded as SQLAlchemy's
    # Snowflake dialect folds them (upper case in Snowflake, lower case in Python).

    def _fold(self, name: str | None) -> str | None:
        return None if name is None else self.engine.dialect.denormalize_name(name)

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        """A schema of the current database."""
        found = conn.execute(
            text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :schema"),
            {"schema": self._fold(schema)},
        ).scalar_one()
        return bool(found)

    def relation_names(self, conn: Connection, schema: str | None) -> list[str]:
        """Tables and views of the schema (the connection's by default)."""
        rows = conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = coalesce(:schema, current_schema())"
            ),
            {"schema": self._fold(schema)},
        ).scalars()
        return sorted(self.engine.dialect.normalize_name(r) for r in rows)

    def reflect_table(self, conn: Connection, name: str, schema: str | None) -> Table:
        """Columns and their types from ``information_schema.columns``."""
        rows = conn.execute(
            text(
                "SELECT column_name, data_type, numeric_scale FROM information_schema.columns "
                "WHERE table_schema = coalesce(:schema, current_schema()) "
                "AND table_name = :name ORDER BY ordinal_position"
            ),
            {"schema": self._fold(schema), "name": self._fold(name)},
        ).all()
        normalize = self.engine.dialect.normalize_name
        columns = [Column(normalize(c), _column_type(t, scale)) for c, t, scale in rows]
        return Table(name, MetaData(), *columns, schema=schema)

    def has_table(self, conn: Connection, name: str, schema: str | None) -> bool:
        """A table of the schema (``information_schema``)."""
        return name in self.relation_names(conn, schema)

    def epoch_micros(self, col: ColumnElement[Any]) -> ColumnElement[int]:
        """``DATE_PART(EPOCH_MICROSECOND, col)`` (UTC for TIMESTAMP_TZ / LTZ)."""
        return func.date_part(literal_column("EPOCH_MICROSECOND"), col)

    def int_div(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``CAST(TRUNC(a / b) AS BIGINT)``: ``/`` is decimal division in Snowflake."""
        return cast(func.trunc(value / divisor), BigInteger)

    def octet_length(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """``OCTET_LENGTH(TO_BINARY(v, 'UTF-8'))``: the UTF-8 byte count (``LENGTH`` counts
        characters; fakesnow only runs OCTET_LENGTH on binary).
        """
        return func.octet_length(func.to_binary(value, lit("UTF-8")))

    def strpos(self, text_value: ColumnElement[str], part: str) -> ColumnElement[int]:
        """``POSITION(part, text)``."""
        return func.position(lit(part), text_value)

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """No locks in Snowflake: the DDL is idempotent (``IF NOT EXISTS``, ``OR REPLACE``);
        this process's own threads still take turns, and the state schema is created first.
        """
        with _MIGRATION_LOCK:
            if state_schema:
                conn.exec_driver_sql(
                    f"CREATE SCHEMA IF NOT EXISTS {self.qualify(state_schema)[:-1]}"
                )
            yield
            conn.commit()

    def infinity(self) -> ColumnElement[float]:
        """``'inf'::FLOAT``."""
        return cast(lit("inf"), Float)

    def json_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """``TO_JSON``: Snowflake keeps an OBJECT's keys sorted."""
        return func.to_json(col)

    def insert_rows(
        self, conn: Connection, stmt: Executable, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        """``MERGE`` batches for upserts (:mod:`.batch`); plain inserts go through the
        connector's ``executemany``, which sends one multi-row INSERT.
        """
        if isinstance(stmt, RowsUpsert):
            run_upsert(conn, stmt, rows)
        else:
            super().insert_rows(conn, stmt, table, rows)

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``MERGE INTO ... USING (rows) ...`` (:class:`.batch.Merge`)."""
        return RowsUpsert(table, keys, update, merge=True, bind_type=self.bind_type)
