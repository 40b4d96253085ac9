"""What differs from one warehouse to the next, gathered in one class per warehouse.

The diff, the source checks and the state tables are written once, against this interface;
each supported warehouse is one module in this package that says how *it* spells each piece:
the canonical text of a value and the row fingerprint (the same text form everywhere, hashed
with the warehouse's own fast function), the shape of the diff's joins, how a connection is
prepared, how the state tables are created under a lock and upserted, and how a query's
column types are read, and how a run holds the sync's lease (one run per sync at a time,
:mod:`..lease`). Nothing outside this package asks which warehouse it is talking to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    inspect,
    literal,
    literal_column,
    not_,
    select,
    true,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import NULL_MARK, Char, RowHash
from kizen_sync.warehouse.dialects.batch import RowsUpsert, run_upsert

__all__ = ["FALSY_TEXT", "Dialect", "concat", "length_prefixed", "lit", "num"]

#: Text values of a soft-delete column that mean "live" (besides NULL), compared trimmed and
#: lower-cased.
FALSY_TEXT = ("", "0", "false", "f", "no", "n")


def lit(value: str) -> ColumnElement[str]:
    """A text literal in the SQL itself: only for our own constants (no quotes inside)."""
    return literal_column(f"'{value}'", Text)


def length_prefixed(value: ColumnElement[Any], length: Any = func.length) -> ColumnElement[str]:
    """``length(v) || ':' || v``: readable back by its length, whatever ``v`` contains."""
    return cast(length(value), Text).op("||")(lit(":")).op("||")(value)


def num(value: float) -> ColumnElement[Any]:
    """A number written into the SQL: only for our own constants (no bound parameter, so a
    canonical form that reads a constant twice is one statement with no parameters).
    """
    return literal_column(repr(value) if isinstance(value, float) else str(int(value)))


def concat(*parts: ColumnElement[Any]) -> ColumnElement[str]:
    """``a || b || ...``: text concatenation every supported warehouse spells the same."""
    out = parts[0]
    for part in parts[1:]:
        out = out.op("||")(part)
    return out


class Dialect:
    """One warehouse's answers to what the rest of the warehouse code asks.

    Subclasses set :attr:`name` (SQLAlchemy's dialect name) and override what their warehouse
    does differently; the defaults are plain ANSI SQL.

    Args:
        engine: the warehouse's engine (read for the server version and the URL).
    """

    #: SQLAlchemy's name for the dialect (``engine.dialect.name``).
    name: ClassVar[str] = ""
    #: How people call it, for messages and the README.
    label: ClassVar[str] = ""
    #: Answer the diff with one FULL OUTER JOIN. When False, the source side is a LEFT JOIN
    #: that can use the state table's primary key and vanished keys come from an EXCEPT: a
    #: planner without hash joins would run the outer join as a nested loop.
    full_outer_join: ClassVar[bool] = True
    #: Count missing keys with ``NOT IN (subquery)`` (an engine that builds the list once)
    #: rather than an outer join (an engine that would run NOT IN as a per-row subplan).
    missing_keys_by_not_in: ClassVar[bool] = False
    #: The state tables may live in a named schema (``warehouse.state_schema``).
    has_schemas: ClassVar[bool] = True
    #: The run lease (:mod:`..lease`) is a session-level advisory lock held on a connection
    #: the run keeps for itself (:meth:`try_advisory_lock` and friends): the server frees it
    #: when the session ends, so a killed run never blocks the next one. Without advisory
    #: locks (the default) the lease is a row in the ``leases`` table with a heartbeat and
    #: an expiry read from :meth:`current_time`, taken by compare-and-swap on its version:
    #: that needs only single-row UPDATEs whose row count is exact and a primary key the
    #: warehouse enforces on INSERT (a warehouse that does not enforce it must override).
    advisory_locks: ClassVar[bool] = False
    #: An INSERT that repeats a primary key fails. Where it does not (keys are informational
    #: in Snowflake, BigQuery and Redshift), the lease settles a double insert itself.
    enforces_primary_keys: ClassVar[bool] = True
    #: The DDL files' ``{schema}`` is quoted as SQLAlchemy quotes it (only when needed), where
    #: quoting changes the name: Snowflake folds unquoted names to upper case.
    ddl_quotes_like_sqlalchemy: ClassVar[bool] = False
    #: Text columns may hold bytes the driver cannot decode (SQLite keeps text as given): a
    #: read that fails with :meth:`is_text_decode_error` makes the diff look for such rows
    #: with :meth:`text_valid` and fail them one by one (:mod:`..unreadable`).
    undecodable_text: ClassVar[bool] = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- connections -----------------------------------------------------------------------

    def prepare_connection(self, dbapi_conn: Any) -> None:
        """Set up a new DBAPI connection (session time zone, functions, journal mode)."""

    def query_column_type(self, type_code: Any) -> TypeEngine[Any]:
        """The SQLAlchemy type of a query's result column from its DBAPI ``type_code``.

        The type decides how the column is fingerprinted; an unknown type is fingerprinted
        through its text form.
        """
        return NullType()

    # --- reflection ------------------------------------------------------------------------

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        """Whether ``schema`` exists in the warehouse the connection points at."""
        return schema in inspect(conn).get_schema_names()

    def may_create_state(self, conn: Connection, schema: str | None) -> tuple[bool | None, str]:
        """Whether the connected user may create kizen-sync's tables in ``schema`` (the
        connection's default when None), and where they would go: the pre-flight check asks,
        because the first run creates them before it sends anything. None: this warehouse
        cannot tell without trying.
        """
        return None, f"the {self.label} warehouse"

    def relation_names(self, conn: Connection, schema: str | None) -> list[str]:
        """The tables and views of ``schema`` (None: the connection's default)."""
        inspector = inspect(conn)
        return sorted({*inspector.get_table_names(schema), *inspector.get_view_names(schema)})

    def reflect_table(self, conn: Connection, name: str, schema: str | None) -> Table:
        """The table or view ``name`` with its columns and their types."""
        return Table(name, MetaData(), schema=schema, autoload_with=conn)

    def has_table(self, conn: Connection, name: str, schema: str | None) -> bool:
        """Whether the table ``name`` exists (kizen-sync's own tables)."""
        return inspect(conn).has_table(name, schema=schema)

    # --- values ----------------------------------------------------------------------------

    def canonical_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """The canonical text of one value (NULL stays NULL); see :mod:`..fingerprint`.

        The forms PostgreSQL 14+ renders (the reference, :mod:`.postgresql`), spelled with
        this warehouse's functions: timestamps as their UTC epoch with six decimals, dates as
        their epoch in whole seconds, booleans ``t``/``f``, integers in decimal, floats in
        their shortest exact form (:meth:`float_text`), numerics with trailing zeros trimmed,
        everything else (text, JSON, time, uuid ...) length-prefixed by its UTF-8 byte count.
        """
        kind = col.type
        if isinstance(kind, DateTime):
            return self.epoch_text(self.epoch_micros(col))
        if isinstance(kind, Date):
            return cast(self.int_div(self.epoch_micros(col), num(1_000_000)), self.text_type())
        if isinstance(kind, Boolean):
            return case((col, lit("t")), (not_(col), lit("f")))
        if isinstance(kind, Integer):
            return cast(col, self.text_type())
        if isinstance(kind, Float):
            return self.float_text(col)
        if isinstance(kind, Numeric):
            as_text = cast(col, self.text_type())
            zeros = func.rtrim(as_text, lit("0"))
            trimmed = case(
                (
                    func.substr(zeros, func.length(zeros), num(1)) == lit("."),
                    func.substr(zeros, num(1), func.length(zeros) - num(1)),
                ),
                else_=zeros,
            )
            return case((self.strpos(as_text, ".") > num(0), trimmed), else_=as_text)
        if isinstance(kind, JSON):
            return length_prefixed(self.json_text(col), self.octet_length)
        return length_prefixed(cast(col, self.text_type()), self.octet_length)

    def octet_length(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """The UTF-8 byte count of a text value (the length prefix)."""
        return func.octet_length(value)

    def epoch_micros(self, col: ColumnElement[Any]) -> ColumnElement[int]:
        """Microseconds since 1970-01-01 UTC of a timestamp or date, as an integer."""
        raise sa_exc.CompileError(f"{self.label or self.name} has no epoch_micros")

    def int_div(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """Integer division truncating toward zero (``value`` is an integer)."""
        return cast(value / divisor, BigInteger)

    def int_mod(self, value: ColumnElement[Any], divisor: Any) -> ColumnElement[int]:
        """Remainder of the integer division (:meth:`int_div`)."""
        return func.mod(value, divisor)

    def epoch_text(self, micros: ColumnElement[Any]) -> ColumnElement[str]:
        """An epoch in microseconds as seconds with six decimals (``-0.500000``)."""
        absolute = func.abs(micros)
        return concat(
            case((micros < num(0), lit("-")), else_=lit("")),
            cast(self.int_div(absolute, num(1_000_000)), self.text_type()),
            lit("."),
            func.lpad(
                cast(self.int_mod(absolute, num(1_000_000)), self.text_type()), num(6), lit("0")
            ),
        )

    def native_float_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """The warehouse's own shortest round-trip text of a float, in Python's ``repr``
        layout (exponent below 1e-4 and from 1e16; ``2.0`` for integral values).
        """
        return cast(col, self.text_type())

    def float_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """A float as PostgreSQL 12+ prints it: shortest exact digits, no ``.0`` on integral
        values, exponent below 1e-4 and from 1e15 (``1e+15``, ``1.5e-07``), ``NaN``,
        ``Infinity``, ``-Infinity``, ``-0``; rewritten from :meth:`native_float_text`.
        """
        native = self.native_float_text(col)
        magnitude = func.abs(col)
        unsigned = func.replace(
            func.replace(self.mantissa(native), lit("-"), lit("")), lit("."), lit("")
        )
        digits = func.rtrim(unsigned, lit("0"))
        sign = case((col < num(0), lit("-")), else_=lit(""))
        mantissa = case(
            (
                func.length(digits) > num(1),
                concat(func.substr(digits, num(1), num(1)), lit("."), func.substr(digits, num(2))),
            ),
            else_=digits,
        )
        return case(
            (self.is_nan(col), lit("NaN")),
            (magnitude == self.infinity(), concat(sign, lit("Infinity"))),
            (col == num(0), case((native.like("-%"), lit("-0")), else_=lit("0"))),
            (
                and_(magnitude < num(1e15), col == func.trunc(col)),
                cast(cast(col, self.bigint_type()), self.text_type()),
            ),
            (
                and_(magnitude >= num(1e15), magnitude < num(1e16)),
                concat(sign, mantissa, lit("e+15")),
            ),
            else_=native,
        )

    def mantissa(self, native: ColumnElement[str]) -> ColumnElement[str]:
        """The part of a float's text before its exponent (all of it without one)."""
        return func.split_part(native, lit("e"), num(1))

    def strpos(self, text_value: ColumnElement[str], part: str) -> ColumnElement[int]:
        """1-based position of ``part`` in ``text_value`` (0: absent)."""
        return func.strpos(text_value, lit(part))

    def infinity(self) -> ColumnElement[float]:
        """The float infinity in this warehouse's SQL."""
        return cast(lit("Infinity"), Float)

    def is_nan(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """True for a NaN float (equal to itself in PostgreSQL-like warehouses)."""
        return col == cast(lit("NaN"), Float)

    def bigint_type(self) -> TypeEngine[int]:
        """The 64-bit integer type."""
        return BigInteger()

    def json_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """The text of a JSON value, as normalised as the warehouse can make it."""
        return cast(col, self.text_type())

    def text_type(self) -> TypeEngine[str]:
        """The type values are cast to for their text form (unbounded text)."""
        return Text()

    def bind_type(self, kind: TypeEngine[Any]) -> TypeEngine[Any]:
        """The type a bound value for a column of kizen-sync's tables is cast to."""
        return kind

    def signature(self, value: str) -> ColumnElement[str]:
        """The mapping signature (16 hex digits) as the first part of every fingerprint."""
        return cast(literal(value), Text)

    def fingerprint(
        self, signature: ColumnElement[str], columns: list[ColumnElement[Any]]
    ) -> ColumnElement[str]:
        """The row fingerprint: a 64-bit hash of the signature and the canonical values."""
        parts = [func.coalesce(self.canonical_text(c), Char(NULL_MARK)) for c in columns]
        return RowHash(signature, *parts)

    def soft_deleted(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """True for rows the soft-delete column marks deleted (NULL, 0, false, '' are live)."""
        kind = col.type
        if isinstance(kind, Boolean):
            return col.is_(True)
        if isinstance(kind, Integer | Numeric):
            return and_(col.is_not(None), col != 0)
        if isinstance(kind, Date | DateTime):
            return col.is_not(None)
        return and_(col.is_not(None), func.lower(func.trim(cast(col, Text))).not_in(FALSY_TEXT))

    def cursor_value(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The cursor column as compared with a time partition's bounds."""
        return col

    def cursor_bound(self, value: datetime | date) -> Any:
        """A time partition's bound as compared with :meth:`cursor_value`."""
        return value

    def cursor_hour(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The hour a cursor value falls in (to count rows per time window)."""
        return func.date_trunc("hour", col)

    def isolate(self, query: Select[Any]) -> Select[Any]:
        """``query`` as a subquery the planner must not flatten into the outer joins."""
        return query

    # --- state tables ----------------------------------------------------------------------

    def qualify(self, schema: str | None) -> str:
        """``schema`` as the DDL files' ``{schema}`` prefix (``"name".``; empty for none)."""
        if not schema:
            return ""
        if self.ddl_quotes_like_sqlalchemy:
            return f"{self.engine.dialect.identifier_preparer.quote_schema(schema)}."
        return f'"{schema}".'

    def create_schema(self, conn: Connection, schema: str) -> None:
        """``CREATE SCHEMA IF NOT EXISTS``, the name quoted as SQLAlchemy quotes the tables'
        schema (only when needed: Snowflake folds unquoted names to upper case).
        """
        quoted = conn.dialect.identifier_preparer.quote_schema(schema)
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """Serialise the creation of the state tables between processes (and create the
        state schema when the warehouse has schemas).
        """
        yield

    def insert_rows(
        self, conn: Connection, stmt: Executable, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        """Run the INSERT (or :meth:`upsert`) ``stmt`` into ``table`` for every row of
        ``rows`` (all with the same keys): one ``executemany`` unless the warehouse has a
        faster bulk path. A batch upsert (:class:`.batch.RowsUpsert`, for warehouses without
        ``ON CONFLICT``) becomes its statements here.
        """
        if isinstance(stmt, RowsUpsert):
            run_upsert(conn, stmt, rows)
        else:
            conn.execute(stmt, rows)

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """An INSERT into ``table`` (rows given when it is executed) that, on a conflict of
        ``keys``, sets ``update(new)`` instead, where ``new`` holds the inserted row's
        columns (``EXCLUDED`` in PostgreSQL and SQLite).
        """
        raise NotImplementedError(f"{self.label or self.name} has no upsert")

    def is_text_decode_error(self, error: BaseException) -> bool:
        """A read failed because a value's bytes are not valid text (never, by default)."""
        return False

    def text_valid(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """True where ``col``'s value can be read as text (always, by default)."""
        return true()

    # --- run lease ------------------------------------------------------------------------

    def current_time(self, conn: Connection) -> datetime:
        """The database's clock, aware UTC: every machine running a sync reads the same one,
        so a lease's expiry never depends on whose clock is ahead.
        """
        value = conn.execute(select(func.current_timestamp())).scalar_one()
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def session_id(self, conn: Connection) -> Any:
        """An id of the database session behind ``conn`` (advisory locks only)."""
        raise NotImplementedError(f"{self.label or self.name} has no advisory locks")

    def watch_lease_session(self, conn: Connection, ttl_s: float) -> None:
        """Make the server notice within about ``ttl_s`` that the client holding ``conn`` is
        gone (its machine lost, not just its process), so that the session's advisory lock
        does not outlive it for hours. Nothing to do where sessions cannot outlive clients.
        """

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        """Take the session-level advisory lock ``key`` (a signed 64-bit integer) on ``conn``
        without waiting; True when this session now holds it.
        """
        raise NotImplementedError(f"{self.label or self.name} has no advisory locks")

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        """Release the advisory lock ``key`` held by ``conn``'s session."""
        raise NotImplementedError(f"{self.label or self.name} has no advisory locks")

    def holds_advisory_lock(self, conn: Connection, session: Any, key: int) -> bool:
        """Whether ``session`` (a :meth:`session_id`) still holds the advisory lock ``key``,
        asked on another connection (``conn``, the state flush's transaction).
        """
        raise NotImplementedError(f"{self.label or self.name} has no advisory locks")
