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
    Connection,
    Date,
    DateTime,
    Float,
    Numeric,
    Table,
    Text,
    Time,
    cast,
    func,
    literal_column,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, Char, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import lit
from kizen_sync.warehouse.dialects.batch import RowsUpsert
from kizen_sync.warehouse.dialects.catalog import InformationSchemaDialect

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


class SnowflakeDialect(InformationSchemaDialect):
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

    # Names in INFORMATION_SCHEMA are folded as SQLAlchemy's Snowflake dialect folds them
    # (upper case in Snowflake, lower case in Python).

    def fold(self, name: str | None) -> str | None:
        """Upper case, as Snowflake stores unquoted names."""
        return None if name is None else self.engine.dialect.denormalize_name(name)

    def unfold(self, name: str) -> str:
        """Lower case, as SQLAlchemy spells case-insensitive names."""
        return str(self.engine.dialect.normalize_name(name))

    def column_type(self, data_type: str, scale: int | None) -> TypeEngine[Any]:
        """Snowflake's type names; NUMBER(p, 0) is an integer."""
        return _column_type(data_type, scale)

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

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``MERGE INTO ... USING (rows) ...`` (:class:`.batch.Merge`)."""
        return RowsUpsert(table, keys, update, merge=True, bind_type=self.bind_type)
