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
    Boolean,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    Select,
    Table,
    Text,
    and_,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.constructs import NULL_MARK, Char, RowHash

__all__ = ["FALSY_TEXT", "Dialect", "length_prefixed", "lit"]

#: Text values of a soft-delete column that mean "live" (besides NULL), compared trimmed and
#: lower-cased.
FALSY_TEXT = ("", "0", "false", "f", "no", "n")


def lit(value: str) -> ColumnElement[str]:
    """A text literal in the SQL itself: only for our own constants (no quotes inside)."""
    return literal_column(f"'{value}'", Text)


def length_prefixed(value: ColumnElement[Any], length: Any = func.length) -> ColumnElement[str]:
    """``length(v) || ':' || v``: readable back by its length, whatever ``v`` contains."""
    return cast(length(value), Text).op("||")(lit(":")).op("||")(value)


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

    # --- values ----------------------------------------------------------------------------

    def canonical_text(self, col: ColumnElement[Any]) -> ColumnElement[str]:
        """The canonical text of one value (NULL stays NULL); see :mod:`..fingerprint`."""
        return length_prefixed(cast(col, Text))

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

    @contextmanager
    def migration_lock(self, conn: Connection, state_schema: str | None) -> Iterator[None]:
        """Serialise the creation of the state tables between processes (and create the
        state schema when the warehouse has schemas).
        """
        yield

    def upsert(
        self, table: Table, keys: list[str], update: Callable[[Any], dict[str, Any]]
    ) -> Executable:
        """An INSERT into ``table`` (rows given when it is executed) that, on a conflict of
        ``keys``, sets ``update(new)`` instead, where ``new`` holds the inserted row's
        columns (``EXCLUDED`` in PostgreSQL and SQLite).
        """
        raise NotImplementedError(f"{self.label or self.name} has no upsert")

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
