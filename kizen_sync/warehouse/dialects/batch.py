"""Upserts for warehouses without ``INSERT ... ON CONFLICT``: a batch of rows at a time.

Snowflake and BigQuery upsert with ``MERGE``; Redshift with ``UPDATE ... FROM`` then ``INSERT
... SELECT ... WHERE NOT EXISTS`` in one transaction (the pattern its documentation gives for
staged upserts). Both read the rows from one ``SELECT ... UNION ALL SELECT ...`` of bound
values, because these warehouses answer each statement in tens of milliseconds or more: one
statement per row (``executemany``) would make a run's bookkeeping slower than its requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.selectable import Subquery
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.types import TypeEngine

__all__ = [
    "BATCH_ROWS",
    "Merge",
    "RowsUpsert",
    "insert_statements",
    "rows_source",
    "run_upsert",
    "upsert_from",
    "upsert_statements",
]

#: Rows per statement: well under the bound-parameter limits of every warehouse.
BATCH_ROWS = 200

Update = Callable[[Any], dict[str, Any]]
BindType = Callable[[TypeEngine[Any]], TypeEngine[Any]]


def _same(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    return kind


class RowsUpsert(Executable, ClauseElement):
    """An upsert whose statements can only be built once its rows are known.

    :meth:`~kizen_sync.warehouse.dialects.base.Dialect.insert_rows` turns it into statements
    (:func:`upsert_statements`); executing it directly is a programming error.
    """

    inherit_cache = False

    def __init__(
        self,
        table: Table,
        keys: list[str],
        update: Update,
        *,
        merge: bool,
        bind_type: BindType = _same,
    ) -> None:
        self.table = table
        self.keys = keys
        self.update = update
        self.merge = merge
        self.bind_type = bind_type


@compiles(RowsUpsert)
def _rows_upsert(element: RowsUpsert, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa_exc.CompileError("a batch upsert runs through Dialect.insert_rows, with its rows")


class Merge(Executable, ClauseElement):
    """``MERGE INTO table AS t USING (source) AS s ON keys WHEN MATCHED THEN UPDATE ...
    WHEN NOT MATCHED THEN INSERT ...``.
    """

    inherit_cache = False

    def __init__(self, table: Table, keys: list[str], update: Update, source: Subquery) -> None:
        self.target = table.alias("t")
        self.source = source
        self.keys = keys
        adapter = ClauseAdapter(self.target)
        self.sets: dict[str, ColumnElement[Any]] = {
            name: adapter.traverse(expr)  # type: ignore[misc]
            for name, expr in update(source.c).items()
        }
        self.names = [c.name for c in source.c]


@compiles(Merge)
def _merge(element: Merge, compiler: SQLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    target, source = element.target, element.source
    on = and_(*(target.c[k] == source.c[k] for k in element.keys))
    sets = ", ".join(f"{quote(n)} = {compiler.process(e, **kw)}" for n, e in element.sets.items())
    names = ", ".join(quote(n) for n in element.names)
    values = ", ".join(compiler.process(source.c[n], **kw) for n in element.names)
    return (
        f"MERGE INTO {compiler.process(target, asfrom=True, **kw)} "
        f"USING {compiler.process(source, asfrom=True, **kw)} "
        f"ON {compiler.process(on, **kw)} "
        f"WHEN MATCHED THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def rows_source(table: Table, rows: list[dict[str, Any]], bind_type: BindType = _same) -> Subquery:
    """``(SELECT CAST(:v AS type) AS col, ... UNION ALL ...) AS s``: the rows, typed as the
    table's columns (a bare NULL has no type in BigQuery), each type as ``bind_type`` says.
    """
    names = list(rows[0])
    kinds = {n: bind_type(table.c[n].type) for n in names}
    selects = [
        select(*(cast(bindparam(None, row[n], type_=kinds[n]), kinds[n]).label(n) for n in names))
        for row in rows
    ]
    query = selects[0] if len(selects) == 1 else union_all(*selects)
    return query.subquery("s")


def upsert_statements(upsert: RowsUpsert, rows: list[dict[str, Any]]) -> Iterator[Executable]:
    """The statements that upsert ``rows``, :data:`BATCH_ROWS` at a time."""
    for start in range(0, len(rows), BATCH_ROWS):
        source = rows_source(upsert.table, rows[start : start + BATCH_ROWS], upsert.bind_type)
        yield from upsert_from(upsert, source)


def upsert_from(upsert: RowsUpsert, source: Subquery) -> Iterator[Executable]:
    """The statements that upsert the rows of ``source`` (a subquery named ``s``)."""
    table, keys = upsert.table, upsert.keys
    if upsert.merge:
        yield Merge(table, keys, upsert.update, source)
        return
    match = and_(*(table.c[k] == source.c[k] for k in keys))
    yield update(table).values(upsert.update(source.c)).where(match)
    names = [c.name for c in source.c]
    yield insert(table).from_select(
        names, select(*source.c).where(~exists().where(match).correlate(source))
    )


def insert_statements(
    table: Table, rows: list[dict[str, Any]], bind_type: BindType = _same
) -> Iterator[Executable]:
    """``INSERT INTO table (...) SELECT ... UNION ALL ...``, :data:`BATCH_ROWS` at a time."""
    for start in range(0, len(rows), BATCH_ROWS):
        source = rows_source(table, rows[start : start + BATCH_ROWS], bind_type)
        yield insert(table).from_select([c.name for c in source.c], select(*source.c))


def run_upsert(conn: Connection, upsert: RowsUpsert, rows: list[dict[str, Any]]) -> None:
    """Execute :func:`upsert_statements` on ``conn`` (inside the caller's transaction)."""
    for statement in upsert_statements(upsert, rows):
        conn.execute(statement)
