"""The warehouse: engine ownership, reflection-checked sources, keys and partitions.

Every table and column name in a sync file is user input that ends up in SQL as an
identifier, and identifiers cannot be bound as parameters. So a :class:`Source` first checks
names against a strict pattern, then against the *reflected* schema, and only then builds SQL,
always from SQLAlchemy Core objects (reflected ``Column``s, or the columns a query reports),
never by pasting names into strings. A ``query`` source is used as a ``text()`` subquery.

Source keys are text: a single-column key is ``CAST(col AS TEXT)`` (an integer 42 is ``"42"``),
a composite key joins its columns' text forms with ``chr(31)`` in the configured order. The same
expression is computed in SQL (to join with ``sync_state``) and in Python (:func:`encode_key`).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    Select,
    Table,
    Text,
    Time,
    and_,
    bindparam,
    cast,
    column,
    create_engine,
    event,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.config import IDENTIFIER_RE, SyncConfig, WarehouseConfig
from kizen_sync.errors import SourceError, StateStoreError
from kizen_sync.models import Partition

__all__ = [
    "KEY_SEPARATOR",
    "Char",
    "KeyBucket",
    "Source",
    "Warehouse",
    "bucket_of",
    "decode_key",
    "encode_key",
    "sqlite_canonical",
    "sqlite_fingerprint",
]

#: Joins the parts of a composite source key (ASCII unit separator).
KEY_SEPARATOR = "\x1f"

_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$|^$")
_READY = "kizen_sync_ready"
_PROBE_ALIAS = "kizen_probe"
_SOURCE_ALIAS = "kizen_src"

# PostgreSQL type OIDs of the columns a query returns -> the type that picks the fingerprint
# format. Anything else is fingerprinted through its text form.
_PG_OID_TYPES: dict[int, TypeEngine[Any]] = {
    16: Boolean(),
    20: Integer(),
    21: Integer(),
    23: Integer(),
    700: Float(),
    701: Float(),
    1700: Numeric(),
    1082: Date(),
    1083: Time(),
    1114: DateTime(),
    1184: DateTime(timezone=True),
    114: JSON(),
    3802: JSON(),
}


# --- dialect constructs ----------------------------------------------------------------------


class Char(FunctionElement[str]):
    """A one-character text constant by code point (``chr(n)`` / SQLite ``char(n)``).

    Control characters are written as function calls so that no invisible byte ever sits in
    the SQL text or in a bound parameter.
    """

    type = Text()
    inherit_cache = True
    name = "kizen_char"


@compiles(Char)
def _char_default(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    return f"chr({compiler.process(element.clauses, **kw)})"


@compiles(Char, "sqlite")
def _char_sqlite(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    return f"char({compiler.process(element.clauses, **kw)})"


class KeyBucket(FunctionElement[int]):
    """Hash bucket of a source key: the first 28 bits of ``md5(key)`` modulo ``buckets``.

    :func:`bucket_of` computes the same number in Python.
    """

    type = Integer()
    inherit_cache = True
    name = "kizen_key_bucket"


@compiles(KeyBucket)
def _bucket_default(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa_exc.CompileError(
        "hash-bucket partitions are implemented for PostgreSQL and SQLite, "
        f"not {compiler.dialect.name}"
    )


@compiles(KeyBucket, "postgresql")
def _bucket_pg(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    return f"mod(('x' || substr(md5({key}), 1, 7))::bit(28)::integer, {buckets})"


@compiles(KeyBucket, "sqlite")
def _bucket_sqlite(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    return f"kizen_bucket({compiler.process(element.clauses, **kw)})"


def bucket_of(key: str, buckets: int) -> int:
    """The hash bucket of ``key`` (same as :class:`KeyBucket` in SQL)."""
    return (
        int(hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:7], 16) % buckets
    )


def _sqlite_md5(*parts: str | None) -> str | None:
    # Variadic: parts joined by chr(31), as md5(concat_ws). Kept registered for callers of the
    # previous fingerprint; the diff now uses kizen_fingerprint.
    if any(part is None for part in parts):
        return None
    joined = "\x1f".join(parts)  # type: ignore[arg-type]
    return hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


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

    Registered as the variadic ``kizen_fingerprint`` SQL function. Doing the whole row in one
    Python call measured 3.7 s per 1M rows of the bench table, against 5.0 s for ``quote()``
    of each column concatenated in SQL + a one-argument Python hash (the previous per-column
    ``CASE typeof(...)``/``printf`` SQL + md5 change stream took 12.0 s). blake2b with an
    8-byte digest was the cheapest stdlib hash in a micro-benchmark of a ~100-byte row (0.6 us
    vs 1.3 us for md5 and sha1, loaded machine), and 64 bits is the collision budget
    reliability-performance.md 1.4 accepts.
    """
    text = "\x1f".join(
        [f"{len(v)}:{v}" if type(v) is _STR else _canonical_other(v) for v in values]
    )
    encoded = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def _sqlite_bucket(key: str | None, buckets: int) -> int | None:
    return None if key is None else bucket_of(key, buckets)


# --- keys --------------------------------------------------------------------------------------


def encode_key(values: Sequence[Any]) -> str:
    """The source key of a row from its primary-key values, in configured column order.

    Matches the SQL ``CAST(col AS TEXT)`` for integers, text, UUIDs and decimals; booleans
    are encoded as ``true``/``false`` (PostgreSQL's text form).
    """
    parts = []
    for value in values:
        if value is None:
            raise ValueError("a source key part is NULL")
        parts.append(("true" if value else "false") if isinstance(value, bool) else str(value))
    return KEY_SEPARATOR.join(parts)


def decode_key(key: str) -> list[str]:
    """The text form of each primary-key column, in configured order."""
    return key.split(KEY_SEPARATOR)


# --- warehouse ---------------------------------------------------------------------------------


class Warehouse:
    """Owns the SQLAlchemy engine of one warehouse and prepares its connections.

    PostgreSQL sessions run with ``TimeZone=UTC`` so that timestamps come back in UTC. SQLite
    connections get the deterministic functions the fingerprint and hash buckets need
    (``kizen_fingerprint``, ``kizen_canonical``, ``kizen_bucket``; ``kizen_md5`` stays for
    the previous fingerprint), and file databases switch to WAL so that a sync can
    record results while the change stream is still open.

    Args:
        url_or_engine: a SQLAlchemy URL, or an engine the caller keeps owning.
        state_schema: PostgreSQL schema for the state/audit tables (default: search path).
        table_prefix: prefix of the state/audit tables.
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        state_schema: str | None = None,
        table_prefix: str = "kizen_sync_",
    ) -> None:
        if state_schema is not None and not IDENTIFIER_RE.match(state_schema):
            raise StateStoreError(f"state schema {state_schema!r} is not a plain SQL identifier")
        if not _PREFIX_RE.match(table_prefix):
            raise StateStoreError(f"table prefix {table_prefix!r} must be letters, digits and _")
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            try:
                self.engine = create_engine(url_or_engine)
            except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
                raise SourceError(f"cannot open the warehouse: {type(exc).__name__}") from None
            self._owns_engine = True
        if self.dialect == "sqlite" and state_schema is not None:
            raise StateStoreError(
                "SQLite keeps state in the main database: leave state_schema unset"
            )
        self.state_schema = state_schema
        self.table_prefix = table_prefix
        event.listen(self.engine, "connect", self._prepare)
        event.listen(self.engine, "checkout", self._prepare_on_checkout)

    @classmethod
    def from_config(cls, config: WarehouseConfig) -> Warehouse:
        """A warehouse from the ``warehouse:`` section of a sync file."""
        return cls(config.url, state_schema=config.state_schema, table_prefix=config.table_prefix)

    @property
    def dialect(self) -> str:
        """SQLAlchemy dialect name (``postgresql``, ``sqlite``, ...)."""
        return self.engine.dialect.name

    def describe(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def safe_message(self, error: BaseException) -> str:
        """The database's message for ``error``, without the statement or any password."""
        original = getattr(error, "orig", None)
        message = str(original if original is not None else error).strip()
        password = self.engine.url.password
        if password:
            message = message.replace(str(password), "***")
        return message

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; database errors become :class:`SourceError` with a safe message."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except sa_exc.DBAPIError as exc:
            raise SourceError(
                f"warehouse {self.describe()}: {self.safe_message(exc)}", warehouse=self.describe()
            ) from None

    def dispose(self) -> None:
        """Close pooled connections (only when this object created the engine)."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    # Connections of an engine handed in by the caller may predate our listeners, so the
    # checkout hook prepares whatever the connect hook has not seen.
    def _prepare_on_checkout(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        self._prepare(dbapi_conn, record)

    def _prepare(self, dbapi_conn: Any, record: Any) -> None:
        if record.info.get(_READY):
            return
        if self.dialect == "sqlite":
            dbapi_conn.create_function("kizen_md5", -1, _sqlite_md5, deterministic=True)
            dbapi_conn.create_function(
                "kizen_fingerprint", -1, sqlite_fingerprint, deterministic=True
            )
            dbapi_conn.create_function("kizen_canonical", 1, sqlite_canonical, deterministic=True)
            dbapi_conn.create_function("kizen_bucket", 2, _sqlite_bucket, deterministic=True)
            database = self.engine.url.database or ""
            if database not in ("", ":memory:") and "mode=memory" not in database:
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
        elif self.dialect == "postgresql":
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            dbapi_conn.autocommit = autocommit
        record.info[_READY] = True


# --- source ------------------------------------------------------------------------------------


class Source:
    """A sync's table or query, checked against the warehouse before any SQL is built from it.

    Raises:
        SourceError: a name is not a plain identifier, the table or a column does not exist,
            or the query fails. The message names the sync, the config key and the name.
    """

    def __init__(self, warehouse: Warehouse, sync: SyncConfig) -> None:
        self.warehouse = warehouse
        self.sync = sync
        self._check_identifiers()
        if sync.source.table is not None:
            self.selectable, self.label = self._reflect_table(sync.source.table)
        else:
            self.selectable, self.label = self._describe_query(sync.source.query or "")
        self._check_columns()

    # --- names -------------------------------------------------------------------------------

    def _names(self) -> list[tuple[str, str]]:
        """Every (config key, column name) this sync refers to."""
        src, ident = self.sync.source, self.sync.identity
        names = [(f"source.primary_key[{i}]", c) for i, c in enumerate(src.primary_key)]
        names += [(f"fields[{i}].column", m.column) for i, m in enumerate(self.sync.fields)]
        if ident.record_id_column is not None:
            names.append(("identity.record_id_column", ident.record_id_column))
        if src.cursor_column is not None:
            names.append(("source.cursor_column", src.cursor_column))
        if src.soft_delete_column is not None:
            names.append(("source.soft_delete_column", src.soft_delete_column))
        return names

    def _error(self, key: str, message: str, **context: Any) -> SourceError:
        return SourceError(
            f"sync {self.sync.name!r}: {key}: {message}", sync=self.sync.name, key=key, **context
        )

    def _check_identifiers(self) -> None:
        table = self.sync.source.table
        if table is not None:
            parts = table.split(".")
            if len(parts) > 2 or not all(IDENTIFIER_RE.match(p) for p in parts):
                raise self._error(
                    "source.table", f"{table!r} is not a plain table name", name=table
                )
        for key, name in self._names():
            if not IDENTIFIER_RE.match(name):
                raise self._error(key, f"{name!r} is not a plain column name", name=name)

    def _reflect_table(self, qualified: str) -> tuple[FromClause, str]:
        schema, _, name = qualified.rpartition(".")
        with self.warehouse.connect() as conn:
            inspector = inspect(conn)
            if schema and schema not in inspector.get_schema_names():
                raise self._error(
                    "source.table", f"schema {schema!r} does not exist", name=qualified
                )
            known = sorted(
                {
                    *inspector.get_table_names(schema or None),
                    *inspector.get_view_names(schema or None),
                }
            )
            if name not in known:
                listed = ", ".join(known[:40]) + (" ..." if len(known) > 40 else "")
                raise self._error(
                    "source.table",
                    f"table {qualified!r} not found (tables: {listed or 'none'})",
                    name=qualified,
                )
            with warnings.catch_warnings():
                # Column types SQLAlchemy does not know reflect as NullType: fingerprinted as text.
                warnings.simplefilter("ignore", sa_exc.SAWarning)
                table = Table(name, MetaData(), schema=schema or None, autoload_with=conn)
        return table, qualified

    def _describe_query(self, query: str) -> tuple[FromClause, str]:
        body = query.strip().rstrip(";").strip()
        probe: Select[Any] = (
            select(literal_column("*"))
            .select_from(text(body).columns().subquery(_PROBE_ALIAS))
            .limit(0)
        )
        try:
            with self.warehouse.engine.connect() as conn:
                result = conn.execute(probe)
                names = list(result.keys())
                codes = [d[1] for d in (result.cursor.description or [])]
                result.close()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(
                "source.query",
                f"the query failed on {self.warehouse.describe()}: "
                f"{self.warehouse.safe_message(exc)}",
            ) from None
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise self._error("source.query", f"the query returns columns more than once: {dupes}")
        pg = self.warehouse.dialect == "postgresql"
        cols = [
            column(
                n,
                _PG_OID_TYPES.get(code, NullType()) if pg and isinstance(code, int) else NullType(),
            )
            for n, code in zip(names, codes, strict=True)
        ]
        return text(body).columns(*cols).subquery(_SOURCE_ALIAS), "query"

    def _check_columns(self) -> None:
        known = set(self.selectable.c.keys())
        unknown = [(k, n) for k, n in self._names() if n not in known]
        if unknown:
            listed = ", ".join(sorted(known))
            what = "; ".join(f"{k}: unknown column {n!r}" for k, n in unknown)
            raise SourceError(
                f"sync {self.sync.name!r}: {what} (columns of {self.label}: {listed})",
                sync=self.sync.name,
                key=unknown[0][0],
                name=unknown[0][1],
                unknown=[n for _, n in unknown],
            )

    # --- expressions -------------------------------------------------------------------------

    def column(self, name: str) -> ColumnElement[Any]:
        """The checked column ``name`` of the source."""
        return self.selectable.c[name]

    @property
    def row_columns(self) -> list[str]:
        """Columns handed to the planner: primary key, mapped columns, record-id column."""
        names = [*self.sync.source.primary_key, *self.sync.mapped_columns]
        if self.sync.identity.record_id_column is not None:
            names.append(self.sync.identity.record_id_column)
        return list(dict.fromkeys(names))

    def key_expr(self) -> ColumnElement[str]:
        """The source key as text (see the module docstring)."""
        parts: list[ColumnElement[Any]] = [
            cast(self.column(c), Text) for c in self.sync.source.primary_key
        ]
        expr = parts[0]
        for part in parts[1:]:
            expr = expr.op("||")(Char(31)).op("||")(part)
        return expr

    def soft_deleted(self) -> ColumnElement[bool] | None:
        """True for rows the soft-delete column marks deleted (NULL, 0, false, '' are live)."""
        name = self.sync.source.soft_delete_column
        if name is None:
            return None
        col = self.column(name)
        falsy = ("", "0", "false", "f", "no", "n")
        if self.warehouse.dialect == "sqlite":
            return and_(
                col.is_not(None),
                or_(
                    and_(func.typeof(col).in_(("integer", "real")), col != 0),
                    and_(
                        func.typeof(col).not_in(("integer", "real")),
                        func.lower(func.trim(col)).not_in(falsy),
                    ),
                ),
            )
        kind = col.type
        if isinstance(kind, Boolean):
            return col.is_(True)
        if isinstance(kind, Integer | Numeric):
            return and_(col.is_not(None), col != 0)
        if isinstance(kind, Date | DateTime):
            return col.is_not(None)
        return and_(col.is_not(None), func.lower(func.trim(cast(col, Text))).not_in(falsy))

    def partition_clause(self, partition: Partition | None) -> ColumnElement[bool] | None:
        """The WHERE condition of a partition (None: the whole source)."""
        if partition is None:
            return None
        window = partition.start is not None or partition.end is not None
        bucketed = partition.bucket is not None or partition.buckets is not None
        if window == bucketed:
            raise self._error(
                "partition", f"{partition.key!r} needs either start/end or bucket/buckets"
            )
        if bucketed:
            if (
                partition.bucket is None
                or not partition.buckets
                or not 0 <= partition.bucket < partition.buckets
            ):
                raise self._error("partition", f"{partition.key!r}: bucket must be in [0, buckets)")
            return KeyBucket(self.key_expr(), partition.buckets) == partition.bucket
        name = self.sync.source.cursor_column
        if name is None:
            raise self._error("source.cursor_column", "time-window partitions need a cursor column")
        cursor: ColumnElement[Any] = self.column(name)
        sqlite = self.warehouse.dialect == "sqlite"
        if sqlite:
            # SQLite keeps timestamps as text; datetime() normalises 'T' / ' ' and UTC offsets.
            cursor = func.datetime(cursor)
        conditions = []
        for bound, lower in ((partition.start, True), (partition.end, False)):
            if bound is None:
                continue
            value = (
                func.datetime(bindparam(None, _sqlite_time(bound), type_=Text)) if sqlite else bound
            )
            conditions.append(cursor >= value if lower else cursor < value)
        return and_(*conditions)

    # --- invariants --------------------------------------------------------------------------

    def check_keys(self, partition: Partition | None = None, *, examples: int = 5) -> None:
        """Fail when a primary-key column is NULL or a key occurs twice (checked in SQL).

        Raises:
            SourceError: naming up to ``examples`` offending keys.
        """
        keys = [self.column(c) for c in self.sync.source.primary_key]
        where = self.partition_clause(partition)
        nulls = select(*keys).where(or_(*(k.is_(None) for k in keys))).limit(examples)
        dupes = (
            select(*keys, func.count().label("n"))
            .group_by(*keys)
            .having(func.count() > 1)
            .limit(examples)
        )
        if where is not None:
            nulls, dupes = nulls.where(where), dupes.where(where)
        with self.warehouse.connect() as conn:
            null_rows = conn.execute(nulls).all()
            if null_rows:
                raise self._error(
                    "source.primary_key",
                    f"primary key {self.sync.source.primary_key} is NULL in "
                    f"{len(null_rows)}+ row(s), e.g. {', '.join(map(repr, map(tuple, null_rows)))}",
                )
            dupe_rows = conn.execute(dupes).all()
        if dupe_rows:
            shown = ", ".join(f"{encode_key(r[:-1])!r} x{r[-1]}" for r in dupe_rows)
            raise self._error(
                "source.primary_key",
                f"primary key {self.sync.source.primary_key} is not unique, e.g. {shown}",
                examples=[encode_key(r[:-1]) for r in dupe_rows],
            )


def _sqlite_time(value: datetime | date) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    return value.isoformat()
