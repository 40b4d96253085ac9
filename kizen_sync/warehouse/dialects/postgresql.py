"""PostgreSQL: hash joins, ``hashtextextended``, advisory locks, sessions in UTC."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    Table,
    Text,
    Time,
    case,
    cast,
    extract,
    func,
    literal,
    not_,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import SEPARATOR, KeyBucket, RowHash
from kizen_sync.warehouse.dialects.base import Dialect, length_prefixed, lit

__all__ = ["PostgresDialect"]

#: JSON text that ``jsonb`` refuses: a NUL or a lone surrogate written as an escape.
_JSONB_REFUSES = r"\\u(0000|d[89a-f])"

#: pg_advisory_xact_lock id shared by every kizen-sync process creating the state tables.
MIGRATION_LOCK_ID = 0x6B697A656E

# PostgreSQL type OIDs of the columns a query returns -> the type that picks the fingerprint
# format. Anything else is fingerprinted through its text form.
_OID_TYPES: dict[int, TypeEngine[Any]] = {
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


@compiles(KeyBucket, "postgresql")
def _bucket(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    key, buckets = (compiler.process(c, **kw) for c in element.clauses)
    return f"mod(('x' || substr(md5({key}), 1, 7))::bit(28)::integer, {buckets})"


@compiles(RowHash, "postgresql")
def _row_hash(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    joined = f"concat_ws(chr({SEPARATOR}), {compiler.process(element.clauses, **kw)})"
    version = compiler.dialect.server_version_info or (0,)
    if version < (11,):
        return f"md5({joined})"
    return f"CAST(hashtextextended({joined}, 0) AS TEXT)"


class PostgresDialect(Dialect):
    """PostgreSQL 10+ (``postgresql+psycopg://``, ``postgresql+psycopg2://``).

    The fingerprint renders each type in one fixed form whatever the session settings:
    ``timestamptz`` as its UTC epoch to the microsecond (``extract(epoch ...)`` is exact
    from 14; older servers ``to_char`` of the UTC time), dates as their epoch, numerics with
    trailing zeros trimmed (1.5 and 1.50 agree), booleans as ``t``/``f``, JSON through
    ``jsonb`` (keys sorted, so a document whose keys come back in another order is not a
    change; a ``json`` document that ``jsonb`` refuses keeps its own text), text
    length-prefixed by its byte length. The hash is ``hashtextextended``
    (PostgreSQL 11+), the cheapest 64-bit hash the server has; older servers use md5.
    """

    name = "postgresql"
    label = "PostgreSQL"
    advisory_locks = True

    def prepare_connection(self, dbapi_conn: Any) -> None:
        """Sessions in UTC, so that timestamps come back in UTC whatever the server says."""
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_conn.autocommit = autocommit

    def query_column_type(self, type_code: Any) -> TypeEngine[Any]:
        """Types of a query's columns from their OIDs."""
        if isinstance(type_code, int):
            return _OID_TYPES.get(type_code, NullType())
        return NullType()

    @property
    def server_version(self) -> tuple[int, ...]:
        """The server's version as integers (``(15, 4)``), known after the first connect."""
        info = self.engine.dialect.server_version_info or (0,)
        return tuple(v for v in info if isinstance(v, int))

    def canonical_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """The canonical text of one value, by column type (see the class docstring)."""
        kind, version = col.type, self.server_version
        epoch = version >= (14,)  # extract() returns exact numeric since 14 (double before)
        if isinstance(kind, DateTime):
            if epoch:
                return cast(extract("epoch", col), Text)
            value = func.timezone(lit("UTC"), col) if kind.timezone else col
            return func.to_char(value, lit('YYYY-MM-DD"T"HH24:MI:SS.US'))
        if isinstance(kind, Date):
            if epoch:
                return cast(extract("epoch", col), Text)
            return func.to_char(col, lit("YYYY-MM-DD"))
        if isinstance(kind, Boolean):
            return case((col, lit("t")), (not_(col), lit("f")))
        if isinstance(kind, Integer | Float):
            return cast(col, Text)  # float text is the shortest exact form since PostgreSQL 12
        if isinstance(kind, Numeric):
            if version >= (13,):
                return cast(func.trim_scale(col), Text)
            as_text = cast(col, Text)
            trimmed = func.rtrim(func.rtrim(as_text, lit("0")), lit("."))
            return case((func.strpos(as_text, lit(".")) > 0, trimmed), else_=as_text)
        if isinstance(kind, JSONB):
            return length_prefixed(cast(col, Text), func.octet_length)  # keys in jsonb's order
        if isinstance(kind, JSON):
            # Through jsonb (keys sorted), except a document jsonb refuses (``\u0000``, a lone
            # surrogate escape), which would fail the whole diff: that one keeps its own text,
            # marked so that it never equals a normalised one.
            as_text = cast(col, Text)
            refused = as_text.op("~*")(literal(_JSONB_REFUSES, Text))
            normal = cast(cast(col, JSONB), Text)
            return length_prefixed(
                case((refused, lit("~").op("||")(as_text)), else_=normal), func.octet_length
            )
        return length_prefixed(cast(col, Text), func.octet_length)

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """A transaction-scoped advisory lock, then the state schema if it is missing.

        The schema is created only when it does not exist: ``CREATE SCHEMA IF NOT EXISTS``
        needs ``CREATE`` on the database even when the schema is there, and a user granted
        ``CREATE`` on its state schema alone (what ``kizen-sync check`` asks for) must be
        able to run.
        """
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        exists = text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :s)")
        if state_schema and not conn.execute(exists, {"s": state_schema}).scalar_one():
            quoted = conn.dialect.identifier_preparer.quote_identifier(state_schema)
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        yield

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE``."""
        stmt = postgresql.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys], set_=update(stmt.excluded)
        )

    # --- run lease: session-level advisory locks ----------------------------------------

    def current_time(self, conn: Connection) -> datetime:
        """``clock_timestamp()``: the time now, not the start of the transaction."""
        value = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value.astimezone(UTC)

    def session_id(self, conn: Connection) -> Any:
        """The backend process id of the session."""
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

    def watch_lease_session(self, conn: Connection, ttl_s: float) -> None:
        """Server-side TCP keepalives for this session only: a killed process closes its
        socket and frees the lock at once, but a lost machine closes nothing, and the server's
        default keepalive (two hours on Linux) would hold the sync that long. Probes after
        ``ttl_s / 4`` idle, three of them ``ttl_s / 12`` apart: a dead client is dropped in
        about ``ttl_s / 2``. (Ignored on a Unix-socket connection, which has no machine to lose.)
        """
        idle, interval = max(1, int(ttl_s / 4)), max(1, int(ttl_s / 12))
        for name, value in (
            ("tcp_keepalives_idle", idle),
            ("tcp_keepalives_interval", interval),
            ("tcp_keepalives_count", 3),
        ):
            conn.execute(
                text("SELECT set_config(:name, :value, false)"),
                {"name": name, "value": str(value)},
            )

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        """``pg_try_advisory_lock``: session-level, kept across transactions until unlocked
        or until the session ends (a killed client's socket closes, the server frees it).
        """
        return bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        )

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        """``pg_advisory_unlock``."""
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    def holds_advisory_lock(self, conn: Connection, session: Any, key: int) -> bool:
        """Read ``pg_locks``: a bigint key shows as ``classid`` (high 32 bits), ``objid``
        (low 32 bits) and ``objsubid`` 1.
        """
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = :pid AND classid = :hi AND objid = :lo AND objsubid = 1"
            ),
            {"pid": session, "hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
        ).scalar_one()
        return bool(held)

    def may_create_state(self, conn: Connection, schema: str | None) -> tuple[bool | None, str]:
        """``has_schema_privilege(schema, 'CREATE')``, or ``has_database_privilege`` when the
        schema does not exist yet (the first run creates it).
        """
        schema = schema or conn.execute(text("SELECT current_schema()")).scalar()
        if schema and self.schema_exists(conn, schema):
            allowed = conn.execute(
                text("SELECT has_schema_privilege(:s, 'CREATE')"), {"s": schema}
            ).scalar()
            return bool(allowed), f"schema {schema!r}"
        allowed = conn.execute(
            text("SELECT has_database_privilege(current_database(), 'CREATE')")
        ).scalar()
        return bool(allowed), f"a new schema {schema!r} in the database"
