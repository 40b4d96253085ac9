"""Change detection in the warehouse: a SQL fingerprint per row, joined with ``sync_state``.

Only new, changed and deleted rows ever leave the warehouse. Each row's fingerprint is the md5
of a canonical text encoding of its fingerprinted columns, computed in SQL:

* the columns are the mapped columns plus the record-id and soft-delete columns (a change in
  either matters), sorted by name so that reordering the sync file changes nothing;
* each value is rendered in one fixed form per column type, so that the same data always gives
  the same text: PostgreSQL ``timestamptz`` in UTC to the microsecond whatever the session time
  zone, naive timestamps and dates in ISO form, numerics with trailing zeros trimmed (1.5 and
  1.50 agree), booleans as ``t``/``f``, JSON through ``jsonb`` (sorted keys); SQLite values by
  their storage class, with a REAL that holds an integer written like the INTEGER;
* text is escaped (ESC, RS and US are prefixed with ESC), NULL is a lone RS (``chr(30)``) and
  values are joined with US (``chr(31)``), so NULL, ``''``, ``'NULL'`` and values containing
  the separator all encode differently.

Deletes: a hash-bucket partition sees rows that vanished (the bucket of the state key is
computed the same way), but a time-window partition cannot: a deleted row has no cursor value
any more. Time windows therefore only report soft-deleted rows as DELETED; run an unpartitioned
or bucketed diff to catch hard deletes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    Select,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import FromClause, Subquery
from sqlalchemy.types import NullType

from kizen_sync.config import SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.models import ChangedRow, ChangeKind, Partition, StateRow
from kizen_sync.source import Char, KeyBucket, Source, Warehouse
from kizen_sync.store import StateStore, decode_values

__all__ = ["ChangeDetector", "DiffCounts", "RowHash", "canonical_text", "fingerprint_columns"]

_ESC, _NULL, _SEP = 27, 30, 31
_KEYS_PER_QUERY = 5000  # `only_keys` are sent as bound parameters, in batches of this size


class RowHash(FunctionElement[str]):
    """md5 hex digest of its arguments joined by chr(31).

    The parts are passed as a flat argument list rather than one long ``a || sep || b``
    chain: SQLAlchemy parenthesises each ``||``, and SQLite's parser overflows its stack on
    the resulting nesting once a sync maps twenty-odd columns. SQLite uses the variadic
    ``kizen_md5`` function the Warehouse registers; other dialects ``md5(concat_ws(...))``.
    """

    type = Text()
    inherit_cache = True
    name = "kizen_row_hash"


@compiles(RowHash)
def _hash_default(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    return f"md5(concat_ws(chr({_SEP}), {compiler.process(element.clauses, **kw)}))"


@compiles(RowHash, "sqlite")
def _hash_sqlite(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    return f"kizen_md5({compiler.process(element.clauses, **kw)})"


def _lit(value: str) -> ColumnElement[str]:
    # Only for our own constants (no quotes inside): keeps them out of the bound parameters.
    return literal_column(f"'{value}'", Text)


def _escape(text: ColumnElement[Any]) -> ColumnElement[str]:
    out = func.replace(text, Char(_ESC), Char(_ESC).op("||")(Char(_ESC)))
    for code in (_NULL, _SEP):
        out = func.replace(out, Char(code), Char(_ESC).op("||")(Char(code)))
    return out


def _pg_text(col: ColumnElement[Any], trim_scale: bool) -> ColumnElement[str]:
    kind = col.type
    if isinstance(kind, DateTime):
        value = func.timezone(_lit("UTC"), col) if kind.timezone else col
        return func.to_char(value, _lit('YYYY-MM-DD"T"HH24:MI:SS.US'))
    if isinstance(kind, Date):
        return func.to_char(col, _lit("YYYY-MM-DD"))
    if isinstance(kind, Boolean):
        return case((col, _lit("t")), (not_(col), _lit("f")))
    if isinstance(kind, Integer | Float):
        return cast(col, Text)  # float text is the shortest exact form since PostgreSQL 12
    if isinstance(kind, Numeric):
        if trim_scale:
            return cast(func.trim_scale(col), Text)
        as_text = cast(col, Text)
        trimmed = func.rtrim(func.rtrim(as_text, _lit("0")), _lit("."))
        return case((func.strpos(as_text, _lit(".")) > 0, trimmed), else_=as_text)
    if isinstance(kind, JSON | JSONB):
        return _escape(cast(cast(col, JSONB), Text))
    return _escape(cast(col, Text))


def _sqlite_text(col: ColumnElement[Any]) -> ColumnElement[str]:
    storage = func.typeof(col)
    integral = and_(col == cast(col, Integer), func.abs(col) < 1e15)
    real = case(
        (integral, cast(cast(col, Integer), Text)),
        else_=func.printf(_lit("%!.17g"), col),
    )
    return case(
        (storage == _lit("integer"), cast(col, Text)),
        (storage == _lit("real"), real),
        (storage == _lit("text"), _escape(col)),
        (storage == _lit("blob"), _lit("x").op("||")(func.hex(col))),
    )


def canonical_text(
    col: ColumnElement[Any], dialect: str, *, trim_scale: bool = True
) -> ColumnElement[str]:
    """The canonical text of one column value (NULL stays NULL), per dialect and column type.

    ``trim_scale`` says whether PostgreSQL has ``trim_scale()`` (version 13 and later).
    """
    if dialect == "postgresql":
        return _pg_text(col, trim_scale)
    if dialect == "sqlite":
        return _sqlite_text(col)
    return _escape(cast(col, Text))


def fingerprint_columns(sync: SyncConfig) -> list[str]:
    """The columns a row's fingerprint covers, sorted by name."""
    names = set(sync.mapped_columns)
    names.update(c for c in (sync.identity.record_id_column, sync.source.soft_delete_column) if c)
    return sorted(names)


@dataclass(frozen=True)
class _Part:
    """One query of a diff: what to select from, and the predicate of each change kind."""

    source: FromClause
    predicates: dict[str, ColumnElement[bool]]
    subqueries: tuple[Subquery | None, Subquery]


@dataclass(frozen=True)
class DiffCounts:
    """What a diff would find, computed with SQL aggregates only.

    ``synced`` is the number of live (not archived) state rows in scope: for a hash bucket the
    state keys in that bucket, for a time window the state rows whose source row is in the
    window. ``source_rows`` counts the in-scope source rows, soft-deleted ones included.
    """

    new: int
    changed: int
    deleted: int
    unchanged: int
    synced: int
    source_rows: int

    @property
    def changes(self) -> int:
        """Rows that would leave the warehouse."""
        return self.new + self.changed + self.deleted


class ChangeDetector:
    """Diffs one sync's source against its ``sync_state`` rows, inside the warehouse.

    The state tables are created on first use (:meth:`StateStore.ensure_schema`). Every diff
    first checks that the primary key is unique and non-NULL in scope (``check_keys``), since a
    duplicate key would make the join report nonsense.

    Args:
        warehouse: the warehouse holding both source and state.
        sync: the sync definition.
        source: an already checked source (built from ``sync`` when omitted).
        check_keys: run the key check before each diff.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        sync: SyncConfig,
        source: Source | None = None,
        *,
        check_keys: bool = True,
    ) -> None:
        self.warehouse = warehouse
        self.sync = sync
        self.source = source if source is not None else Source(warehouse, sync)
        self.store = StateStore(warehouse)
        self._check_keys = check_keys

    # --- expressions -------------------------------------------------------------------------

    def fingerprint_expr(self) -> ColumnElement[str]:
        """The SQL fingerprint of a source row (md5 hex of the canonical encoding)."""
        dialect = self.warehouse.dialect
        version = self.warehouse.engine.dialect.server_version_info or (0,)
        trim_scale = dialect != "postgresql" or version >= (13,)
        parts = [
            func.coalesce(
                canonical_text(self.source.column(c), dialect, trim_scale=trim_scale), Char(_NULL)
            )
            for c in fingerprint_columns(self.sync)
        ]
        return RowHash(*parts)

    def fingerprint_query(self, partition: Partition | None = None) -> Select[str, str]:
        """``SELECT source_key, fingerprint`` over the source (for inspection and tests)."""
        stmt = select(
            self.source.key_expr().label("source_key"), self.fingerprint_expr().label("fingerprint")
        )
        stmt = stmt.select_from(self.source.selectable)
        where = self.source.partition_clause(partition)
        return stmt if where is None else stmt.where(where)

    def _diff(
        self,
        partition: Partition | None,
        keys: Sequence[str] | None,
        *,
        with_rows: bool,
    ) -> list[_Part]:
        """The joins to run and the SQL predicates of each change kind in them."""
        source, state = self.source, self.store.tables.state
        key = source.key_expr()
        src_cols: list[ColumnElement[Any]] = [key.label("k"), self.fingerprint_expr().label("fp")]
        soft = source.soft_deleted()
        if soft is not None:
            src_cols.append(case((soft, 1), else_=0).label("sd"))
        if with_rows:
            src_cols += [
                type_coerce(source.column(name), NullType()).label(f"c{i}")
                for i, name in enumerate(source.row_columns)
            ]
        src_q = select(*src_cols).select_from(source.selectable)
        st_q = select(
            state.c.source_key,
            state.c.kizen_id,
            state.c.fingerprint,
            state.c.values_json,
            state.c.archived,
        ).where(state.c.sync_name == self.sync.name)
        where = source.partition_clause(partition)
        if where is not None:
            src_q = src_q.where(where)
        if partition is not None and partition.buckets:
            st_q = st_q.where(KeyBucket(state.c.source_key, partition.buckets) == partition.bucket)
        if keys is not None:
            src_q = src_q.where(key.in_(keys))
            st_q = st_q.where(state.c.source_key.in_(keys))
        src, st = src_q.subquery("src"), st_q.subquery("st")
        windowed = partition is not None and not partition.buckets
        # PostgreSQL answers the FULL OUTER JOIN with one hash join. SQLite would run it as a
        # nested loop over two subqueries (quadratic), so there the source side is a LEFT JOIN
        # that uses the state primary key, and vanished keys come from an EXCEPT (sorted).
        split = self.warehouse.dialect == "sqlite"
        joined = src.join(
            st, src.c.k == st.c.source_key, isouter=windowed or split, full=not (windowed or split)
        )

        has_src, has_st = src.c.k.is_not(None), st.c.source_key.is_not(None)
        gone: ColumnElement[bool] = src.c.sd == 1 if soft is not None else false()
        live = and_(has_src, not_(gone)) if soft is not None else has_src
        archived = st.c.archived == true()
        same = and_(st.c.fingerprint.is_not(None), st.c.fingerprint == src.c.fp)
        parts = [
            _Part(
                joined,
                {
                    "new": and_(live, not_(has_st)),
                    "changed": and_(live, has_st, or_(archived, not_(same))),
                    "deleted": and_(
                        has_st, not_(archived), or_(not_(has_src), and_(has_src, gone))
                    ),
                    "unchanged": and_(live, has_st, not_(archived), same),
                    "synced": and_(has_st, not_(archived)),
                    "source_rows": has_src,
                },
                (src, st),
            )
        ]
        if split and not windowed:
            vanished = select(st_q.subquery("st_keys").c.source_key).except_(
                select(src_q.subquery("src_keys").c.k)
            )
            gone_st = st_q.where(state.c.source_key.in_(vanished)).subquery("st")
            alive = gone_st.c.archived != true()
            parts.append(
                _Part(
                    gone_st,
                    {"deleted": alive, "synced": alive},
                    (None, gone_st),
                )
            )
        return parts

    # --- public API --------------------------------------------------------------------------

    def counts(
        self, partition: Partition | None = None, only_keys: Collection[str] | None = None
    ) -> DiffCounts:
        """How many rows are new, changed, deleted, unchanged; no row leaves the warehouse."""
        self._prepare(partition)
        totals = dict.fromkeys(
            ("new", "changed", "deleted", "unchanged", "synced", "source_rows"), 0
        )
        for keys in _batches(only_keys):
            for part in self._diff(partition, keys, with_rows=False):
                sums = [
                    func.coalesce(func.sum(case((p, 1), else_=0)), 0).label(n)
                    for n, p in part.predicates.items()
                ]
                with self.warehouse.connect() as conn:
                    row = conn.execute(select(*sums).select_from(part.source)).one()
                for name, value in row._mapping.items():
                    totals[str(name)] += int(value)
        return DiffCounts(**totals)

    def iter_changes(
        self,
        partition: Partition | None = None,
        *,
        full_refresh: bool = False,
        only_keys: Collection[str] | None = None,
        chunk_size: int = 1000,
    ) -> Iterator[list[ChangedRow]]:
        """Stream the new, changed and deleted rows in chunks of up to ``chunk_size``.

        Rows come through a server-side cursor, so memory stays flat however large the
        source. ``full_refresh`` reports every in-scope row that has state as CHANGED (rows
        without state stay NEW), for backfills that compare every field. ``only_keys`` limits
        the diff to those source keys (the retry path).
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._prepare(partition)
        names = self.source.row_columns
        for keys in _batches(only_keys):
            for part in self._diff(partition, keys, with_rows=True):
                p = part.predicates
                whens = [
                    (p[k.value], _lit(k.value))
                    for k in (ChangeKind.NEW, ChangeKind.DELETED)
                    if k.value in p
                ]
                if "changed" in p:
                    changed = or_(p["changed"], p["unchanged"]) if full_refresh else p["changed"]
                    whens.append((changed, _lit(ChangeKind.CHANGED.value)))
                kind = case(*whens).label("kind")
                inner = select(kind, *(q for q in part.subqueries if q is not None))
                inner_q = inner.select_from(part.source).subquery("d")
                stmt = select(inner_q).where(inner_q.c.kind.is_not(None))
                yield from self._stream(stmt, names, chunk_size)

    def _stream(
        self, stmt: Select[Any], names: list[str], chunk_size: int
    ) -> Iterator[list[ChangedRow]]:
        try:
            with self.warehouse.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(
                    stmt
                )
                for part in result.partitions():
                    yield [self._changed_row(r._mapping, names) for r in part]
        except sa_exc.DBAPIError as exc:
            raise SourceError(
                f"sync {self.sync.name!r}: diff failed on {self.warehouse.describe()}: "
                f"{self.warehouse.safe_message(exc)}",
                sync=self.sync.name,
            ) from None

    def _changed_row(self, row: Any, names: list[str]) -> ChangedRow:
        kind = ChangeKind(row["kind"])
        state = None
        if row["source_key"] is not None:
            state = StateRow(
                source_key=row["source_key"],
                kizen_id=row["kizen_id"],
                fingerprint=row["fingerprint"],
                values=decode_values(row["values_json"]),
                archived=bool(row["archived"]),
            )
        if kind is ChangeKind.DELETED:
            return ChangedRow(kind, row["source_key"], None, state, None)
        values = {name: row[f"c{i}"] for i, name in enumerate(names)}
        return ChangedRow(kind, row["k"], values, state, row["fp"])

    def _prepare(self, partition: Partition | None) -> None:
        self.store.ensure_schema()
        if self._check_keys:
            self.source.check_keys(partition)


def _batches(keys: Collection[str] | None) -> Iterator[list[str] | None]:
    if keys is None:
        yield None
        return
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), _KEYS_PER_QUERY):
        yield ordered[start : start + _KEYS_PER_QUERY]
