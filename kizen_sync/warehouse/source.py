"""A sync's source: its table or query, checked against the warehouse before any SQL is built.

Every table and column name in a sync file is user input that ends up in SQL as an
identifier, and identifiers cannot be bound as parameters. So a :class:`Source` first checks
names against a strict pattern, then against the *reflected* schema, and only then builds SQL,
always from SQLAlchemy Core objects (reflected ``Column``s, or the columns a query reports),
never by pasting names into strings. A ``query`` source is used as a ``text()`` subquery.

Source keys are text (:mod:`kizen_sync.warehouse.keys`); :meth:`Source.key_expr` computes the
same text form in SQL.
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from kizen_sync.config import IDENTIFIER_RE, SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.models import Partition
from kizen_sync.warehouse.constructs import SEPARATOR, Char, KeyBucket
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.keys import encode_key

__all__ = ["Source"]

_PROBE_ALIAS = "kizen_probe"
_SOURCE_ALIAS = "kizen_src"


class Source:
    """A sync's table or query, checked against the warehouse before any SQL is built from it.

    Raises:
        SourceError: a name is not a plain identifier, the table or a column does not exist,
            or the query fails. The message names the sync, the config key and the name.
    """

    def __init__(
        self, warehouse: Warehouse, sync: SyncConfig, *, table: Table | None = None
    ) -> None:
        self.warehouse = warehouse
        self.sync = sync
        self._check_identifiers()
        self.selectable: FromClause
        if table is not None:  # already known (no reflection): checked all the same
            self.selectable, self.label = table, table.fullname
        elif sync.source.table is not None:
            self.selectable, self.label = self._reflect_table(sync.source.table)
        else:
            self.selectable, self.label = self._describe_query(sync.source.query or "")
        self._check_columns()

    @classmethod
    def from_table(cls, warehouse: Warehouse, sync: SyncConfig, table: Table) -> Source:
        """A source over an already described ``table`` (compiling SQL for a warehouse
        that is not connected, e.g. in tests).
        """
        return cls(warehouse, sync, table=table)

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
        dialect = self.warehouse.sql_dialect
        with self.warehouse.connect() as conn:
            if schema and not dialect.schema_exists(conn, schema):
                raise self._error(
                    "source.table", f"schema {schema!r} does not exist", name=qualified
                )
            known = dialect.relation_names(conn, schema or None)
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
                table = dialect.reflect_table(conn, name, schema or None)
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
        dialect = self.warehouse.sql_dialect
        cols = [
            column(n, dialect.query_column_type(code)) for n, code in zip(names, codes, strict=True)
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
                # one (key, message) per unknown column, for ``validate``'s list of problems
                column_problems=[
                    (k, f"unknown column {n!r} (columns of {self.label}: {listed})")
                    for k, n in unknown
                ],
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
        """The source key as text (see :mod:`kizen_sync.warehouse.keys`)."""
        text_type = self.warehouse.sql_dialect.text_type()
        parts: list[ColumnElement[Any]] = [
            cast(self.column(c), text_type) for c in self.sync.source.primary_key
        ]
        expr = parts[0]
        for part in parts[1:]:
            expr = expr.op("||")(Char(SEPARATOR)).op("||")(part)
        return expr

    def soft_deleted(self) -> ColumnElement[bool] | None:
        """True for rows the soft-delete column marks deleted (NULL, 0, false, '' are live)."""
        name = self.sync.source.soft_delete_column
        if name is None:
            return None
        return self.warehouse.sql_dialect.soft_deleted(self.column(name))

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
        dialect = self.warehouse.sql_dialect
        cursor = dialect.cursor_value(self.column(name))
        conditions = []
        if partition.start is not None:
            conditions.append(cursor >= dialect.cursor_bound(partition.start))
        if partition.end is not None:
            conditions.append(cursor < dialect.cursor_bound(partition.end))
        return and_(*conditions)

    # --- invariants --------------------------------------------------------------------------

    def key_check_statements(
        self, partition: Partition | None = None, *, examples: int = 5
    ) -> tuple[Select[Any], Select[Any]]:
        """The two statements of :meth:`check_keys`: NULL keys, then duplicated keys."""
        keys = [self.column(c) for c in self.sync.source.primary_key]
        where = self.partition_clause(partition)
        nulls: Select[Any] = select(*keys).where(or_(*(k.is_(None) for k in keys)))
        dupes: Select[Any] = (
            select(*keys, func.count().label("n")).group_by(*keys).having(func.count() > 1)
        )
        if where is not None:
            nulls, dupes = nulls.where(where), dupes.where(where)
        return nulls.limit(examples), dupes.limit(examples)

    def check_keys(self, partition: Partition | None = None, *, examples: int = 5) -> None:
        """Fail when a primary-key column is NULL or a key occurs twice (checked in SQL).

        Raises:
            SourceError: naming up to ``examples`` offending keys.
        """
        nulls, dupes = self.key_check_statements(partition, examples=examples)
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
