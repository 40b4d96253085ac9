"""SQLite: the embedded default. Fingerprints in one Python call per row, WAL journals.

SQLite has no 64-bit hash function of its own, so each connection gets deterministic Python
functions: ``kizen_fingerprint`` (the whole row in one call), ``kizen_canonical`` (one value)
and ``kizen_bucket`` (hash-bucket partitions). Values are rendered by their storage class,
since a SQLite column holds whatever it was given.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.functions import FunctionElement

from kizen_sync.warehouse.constructs import Char, KeyBucket
from kizen_sync.warehouse.dialects.base import FALSY_TEXT, Dialect
from kizen_sync.warehouse.keys import bucket_of

__all__ = ["SqliteDialect", "SqliteFingerprint", "sqlite_canonical", "sqlite_fingerprint"]

_STR, _INT, _FLOAT = str, int, float


def _canonical_other(value: Any) -> str:
    """Canonical text of a non-text SQLite value (see :func:`sqlite_canonical`)."""
    kind = type(value)
    if kind is _INT:
        return str(value)
    if value is None:
        return "\x1e"
    if kind is _FLOAT:
        if value.is_integer() and -1e15 < value < 1e15:
            return str(int(value))  # a REAL holding an integer is written like the INTEGER
        return repr(value)  # shortest text that reads back as the same double
    return "x" + bytes(value).hex()


def sqlite_canonical(value: Any) -> str:
    """The canonical text of one SQLite value, as it enters the row fingerprint.

    By storage class: TEXT length-prefixed (``"5:hello"``: read back by its length, so it may
    contain anything), INTEGER in decimal, REAL as the INTEGER when it holds one below 1e15
    (so 2.0 and 2 agree) else its shortest round-trip form, BLOB ``x`` + hex, NULL a lone RS
    (``chr(30)``). None of the non-text forms contains RS or US, and a text form starts with a
    digit, so NULL, ``''``, ``'NULL'`` and separator-laden text all differ.
    """
    return f"{len(value)}:{value}" if type(value) is _STR else _canonical_other(value)


def sqlite_fingerprint(*values: Any) -> str:
    """The SQLite row fingerprint: blake2b-64 (hex) of the canonical values joined by US.

    Registered as the variadic ``kizen_fingerprint`` SQL function: the whole row in one
    Python call is the cheapest way found to fingerprint a SQLite row (``bench/README.md``),
    and blake2b with an 8-byte digest is the cheapest stdlib hash of a short row; 64 bits is
    the collision budget ``reliability-performance.md`` accepts.
    """
    text = "\x1f".join(
        [f"{len(v)}:{v}" if type(v) is _STR else _canonical_other(v) for v in values]
    )
    encoded = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def _utf8_ok(value: Any) -> int:
    """1 when ``value`` (a BLOB) is valid UTF-8 (the ``kizen_utf8_ok`` SQL function)."""
    try:
        bytes(value).decode("utf-8")
    except (TypeError, UnicodeDecodeError):
        return 0
    return 1


def _bucket(key: str | None, buckets: int) -> int | None:
    return None if key is None else bucket_of(key, buckets)


class SqliteFingerprint(FunctionElement[str]):
    """``kizen_fingerprint(v1, ..., vn)``: one Python call per row on the raw values."""

    type = Text()
    inherit_cache = True
    name = "kizen_fingerprint"


@compiles(SqliteFingerprint)
def _fingerprint(element: SqliteFingerprint, compiler: SQLCompiler, **kw: Any) -> str:
    return f"kizen_fingerprint({compiler.process(element.clauses, **kw)})"


@compiles(Char, "sqlite")
def _char(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    return f"char({compiler.process(element.clauses, **kw)})"


@compiles(KeyBucket, "sqlite")
def _key_bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    return f"kizen_bucket({compiler.process(element.clauses, **kw)})"


def _naive_utc_text(value: datetime | date) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    return value.isoformat()


class SqliteDialect(Dialect):
    """SQLite 3.25+ (``sqlite:///path.db``): the embedded default."""

    name = "sqlite"
    label = "SQLite"
    # SQLite would run a FULL OUTER JOIN of two subqueries as a nested loop (quadratic).
    full_outer_join = False
    # SQLite builds an IN list once (an ephemeral index); NOT EXISTS would rescan per row.
    missing_keys_by_not_in = True
    has_schemas = False
    undecodable_text = True

    def prepare_connection(self, dbapi_conn: Any) -> None:
        """Register the fingerprint functions; file databases switch to WAL, so that a sync
        can record results while its change stream is still open.
        """
        # Looked up at call time, so that a test may wrap the module's function.
        dbapi_conn.create_function("kizen_fingerprint", -1, sqlite_fingerprint, deterministic=True)
        dbapi_conn.create_function("kizen_canonical", 1, sqlite_canonical, deterministic=True)
        dbapi_conn.create_function("kizen_bucket", 2, _bucket, deterministic=True)
        dbapi_conn.create_function("kizen_utf8_ok", 1, _utf8_ok, deterministic=True)
        database = self.engine.url.database or ""
        if database not in ("", ":memory:") and "mode=memory" not in database:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

    def canonical_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """Rendered in Python by storage class (:func:`sqlite_canonical`)."""
        return func.kizen_canonical(col, type_=Text)

    def fingerprint(
        self, signature: ColumnElement[str], columns: list[ColumnElement[Any]]
    ) -> ColumnElement[str]:
        """The raw values go to one Python call (:func:`sqlite_fingerprint`)."""
        return SqliteFingerprint(signature, *columns)

    def soft_deleted(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """By storage class: a number is deleted when non-zero, text when not falsy."""
        return and_(
            col.is_not(None),
            or_(
                and_(func.typeof(col).in_(("integer", "real")), col != 0),
                and_(
                    func.typeof(col).not_in(("integer", "real")),
                    func.lower(func.trim(col)).not_in(FALSY_TEXT),
                ),
            ),
        )

    def is_text_decode_error(self, error: BaseException) -> bool:
        """sqlite3 could not decode a value: in a row it returns, or in the arguments of a
        Python function (the fingerprint's), which it reports only as "raised exception".
        """
        message = str(getattr(error, "orig", None) or error)
        return "Could not decode to UTF-8" in message or "function raised exception" in message

    def text_valid(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """Not text, or text whose raw bytes decode as UTF-8 (read as a BLOB: no decoding)."""
        return or_(func.typeof(col) != "text", func.kizen_utf8_ok(cast(col, LargeBinary)) == 1)

    def cursor_value(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """SQLite keeps timestamps as text; ``datetime()`` normalises 'T' / ' ' and offsets."""
        return func.datetime(col)

    def cursor_bound(self, value: datetime | date) -> Any:
        """The bound as naive UTC text through the same ``datetime()``."""
        return func.datetime(bindparam(None, _naive_utc_text(value), type_=Text))

    def cursor_hour(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The hour as naive UTC text, ``YYYY-MM-DD HH:00:00``."""
        return func.strftime("%Y-%m-%d %H:00:00", func.datetime(col))

    def isolate(self, query: Select[Any]) -> Select[Any]:
        """``LIMIT -1`` (no limit) keeps SQLite from flattening the subquery into the join,
        which would paste the fingerprint call into every predicate that reads it.
        """
        return query.limit(-1)

    def current_time(self, conn: Connection) -> datetime:
        """``strftime(... 'now')`` to the millisecond (``CURRENT_TIMESTAMP`` has seconds)."""
        value = conn.execute(
            select(func.strftime("%Y-%m-%d %H:%M:%f", "now", type_=Text))
        ).scalar_one()
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: the database's write lock, held until the commit."""
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE``."""
        stmt = sqlite.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys], set_=update(stmt.excluded)
        )

    def may_create_state(self, conn: Connection, schema: str | None) -> tuple[bool | None, str]:
        """Whether the database file (or, before it exists, its directory) is writable."""
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True, "the in-memory database"
        path = Path(database)
        directory = path.parent if str(path.parent) else Path()
        writable = os.access(directory, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
        return writable, f"the database file {path}"
