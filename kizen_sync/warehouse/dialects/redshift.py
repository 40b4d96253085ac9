"""Redshift through ``sqlalchemy-redshift`` (``redshift_connector`` driver): ``FNV_HASH``.

Redshift speaks a PostgreSQL 8 dialect but is not PostgreSQL: no ``hashtextextended``, no
``ON CONFLICT``, no advisory locks, and its ``TEXT`` is ``VARCHAR(256)``. Compiled, not yet
run live: CI compiles every statement the connector issues with the real dialect and parses
it with sqlglot's Redshift grammar (``tests/warehouse/test_compiled_dialects.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import VARCHAR, DateTime, Table, Text, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import Dialect
from kizen_sync.warehouse.dialects.batch import RowsUpsert

__all__ = ["RedshiftDialect"]


@compiles(KeyBucket, "redshift")
def _bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    return f"MOD(STRTOL(SUBSTRING(MD5({key}), 1, 7), 16), {buckets})"


@compiles(RowHash, "redshift")
def _row_hash(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    # No CONCAT_WS in Redshift, and its CONCAT takes two arguments: a flat || chain.
    separator = f" || CHR({SEPARATOR}) || "
    parts = separator.join(compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(FNV_HASH({parts}) AS VARCHAR)"


class RedshiftDialect(Dialect):
    """Redshift (``redshift+redshift_connector://user:${PASSWORD}@cluster:5439/database``).

    ``FNV_HASH`` (64-bit) hashes the canonical text; epochs are ``DATEDIFF`` in
    microseconds from 1970-01-01 (UTC for TIMESTAMPTZ), lengths ``OCTET_LENGTH``. Upserts are
    ``UPDATE ... FROM`` + ``INSERT ... WHERE NOT EXISTS`` batches in one transaction. The
    state tables are created with idempotent statements only (no advisory locks).
    """

    name = "redshift"
    ddl_quotes_like_sqlalchemy = True
    enforces_primary_keys = False
    label = "Redshift"

    def epoch_micros(self, col: ColumnElement[Any]) -> ColumnElement[int]:
        """``DATEDIFF(microsecond, '1970-01-01', col)``."""
        kind = col.type
        epoch = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
        if not (isinstance(kind, DateTime) and kind.timezone):
            epoch = "TIMESTAMP '1970-01-01 00:00:00'"
        return func.datediff(literal_column("microsecond"), literal_column(epoch), col)

    def int_mod(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``MOD``."""
        return func.mod(value, divisor)

    def int_div(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """``/``: integer division on integers, truncating toward zero."""
        return value / divisor

    def text_type(self) -> TypeEngine[str]:
        """``VARCHAR(65535)``: Redshift's ``TEXT`` is ``VARCHAR(256)``."""
        return VARCHAR(65535)

    def bind_type(self, kind: TypeEngine[Any]) -> TypeEngine[Any]:
        """Text columns are ``VARCHAR(MAX)`` (65535 bytes)."""
        return VARCHAR(65535) if isinstance(kind, Text) else kind

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``UPDATE ... FROM (rows)`` then ``INSERT ... SELECT ... WHERE NOT EXISTS``."""
        return RowsUpsert(table, keys, update, merge=False, bind_type=self.bind_type)
