"""Change detection in the warehouse: a SQL fingerprint per row, joined with ``sync_state``.

Only new, changed and deleted rows ever leave the warehouse. Each row's fingerprint is a
64-bit hash of a canonical encoding of its fingerprinted columns, computed in the database:

* the columns are the mapped columns plus the record-id and soft-delete columns (a change in
  either matters), sorted by name so that reordering the sync file changes nothing;
* the first part is the sync's mapping signature (:func:`mapping_signature`): editing how
  columns map to fields (another field, format, NULL handling, option matching...) moves
  every fingerprint, so the next run re-plans every row against its last synced values and
  sends what the new mapping changes, instead of waiting for each row to change;
* each value is rendered in one fixed form per column type, so that the same data always gives
  the same text: PostgreSQL ``timestamptz`` as its UTC epoch to the microsecond whatever the
  session time zone (``extract(epoch ...)``, PostgreSQL 14+; older servers ``to_char`` of the
  UTC time), dates as their epoch, numerics with trailing zeros trimmed (1.5 and 1.50 agree),
  booleans as ``t``/``f``, JSON through ``jsonb`` (sorted keys); SQLite values by their storage
  class, with a REAL that holds an integer written like the INTEGER;
* text is length-prefixed (``octet_length(v) || ':' || v``), NULL is a lone RS (``chr(30)``)
  and values are joined with US (``chr(31)``): the types that are not length-prefixed never
  render an RS or a US, and a length-prefixed value is read by its length, so NULL, ``''``,
  ``'NULL'`` and values containing the separator all encode differently;
* the hash is ``hashtextextended(text, 0)`` on PostgreSQL 11+ (signed 64-bit, stored as its
  decimal text) and ``blake2b(digest_size=8)`` in the Python function SQLite calls once per
  row (:func:`kizen_sync.source.sqlite_fingerprint`); other dialects ``md5``. For N rows the
  chance that any changed row keeps its 64-bit fingerprint is about N / 2**64 (5e-14 at 1M
  rows); reliability-performance.md 1.4 puts the all-pairs figure at ~3e-8 per 1M-row diff.

Why these choices (CPU seconds of the PostgreSQL 15 backend for 1M rows of the bench table,
one core, best of 3; plain scan of the same columns 0.87 s): md5 + three nested ``replace``
escapes per text column 3.45 s; ``hashtextextended`` instead of md5 2.12 s; length prefix
instead of escapes costs the same (0.38 vs 0.39 s for two text columns) but is one
expression; epoch instead of ``to_char`` for timestamps (0.29 vs 0.53 s per column) and
dates (0.24 vs 0.39 s) brings the whole fingerprint to 1.34 s. On SQLite the per-column
``CASE typeof(...)`` SQL + md5 took 12 s for the 1M-row change stream; one variadic Python
call per row measured 3.7 s per 1M rows (fingerprint alone), ``quote()``-concatenation +
a one-argument hash 5.0 s.

A normal run scans once: the guards only need :meth:`ChangeDetector.archive_counts`
(key-only anti-join, no fingerprint); ``unchanged`` is derived from those counts and the
change stream (:class:`ChangeTally`). :meth:`ChangeDetector.counts` still computes every
figure in SQL (one fingerprint scan) for callers that want them without streaming.

Changing the encoding or the hash moves every fingerprint once: the next run reports every
synced row CHANGED, the planner finds no Kizen value changed and plans NOOP state refreshes
(no request), and the run after that is quiet again.

Deletes: a hash-bucket partition sees rows that vanished (the bucket of the state key is
computed the same way), but a time-window partition cannot: a deleted row has no cursor value
any more. Time windows therefore only report soft-deleted rows as DELETED; run an unpartitioned
or bucketed diff to catch hard deletes.
"""

from __future__ import annotations

import hashlib
import json
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
    extract,
    false,
    func,
    literal,
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

__all__ = [
    "ArchiveCounts",
    "ChangeDetector",
    "ChangeTally",
    "DiffCounts",
    "RowHash",
    "SqliteFingerprint",
    "canonical_text",
    "fingerprint_columns",
    "mapping_signature",
]

_NULL, _SEP = 30, 31
_KEYS_PER_QUERY = 5000  # `only_keys` are sent as bound parameters, in batches of this size


class RowHash(FunctionElement[str]):
    """64-bit hash (as text) of its arguments joined by chr(31).

    The parts are passed as a flat argument list rather than one long ``a || sep || b``
    chain: SQLAlchemy parenthesises each ``||``, and SQLite's parser overflows its stack on
    the resulting nesting once a sync maps twenty-odd columns. PostgreSQL 11+ uses
    ``hashtextextended(concat_ws(...), 0)`` (1.1-1.3 s less CPU per 1M rows than md5, see the
    module docstring); other dialects ``md5(concat_ws(...))``. SQLite does not use this
    construct: it hashes the raw values in one Python call (:class:`SqliteFingerprint`).
    """

    type = Text()
    inherit_cache = True
    name = "kizen_row_hash"


@compiles(RowHash)
def _hash_default(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    return f"md5(concat_ws(chr({_SEP}), {compiler.process(element.clauses, **kw)}))"


@compiles(RowHash, "postgresql")
def _hash_pg(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    joined = f"concat_ws(chr({_SEP}), {compiler.process(element.clauses, **kw)})"
    version = compiler.dialect.server_version_info or (0,)
    if version < (11,):
        return f"md5({joined})"
    return f"CAST(hashtextextended({joined}, 0) AS TEXT)"


class SqliteFingerprint(FunctionElement[str]):
    """SQLite: ``kizen_fingerprint(v1, ..., vn)``, one Python call per row on the raw values.

    The canonical rendering (storage class, integral REALs, length-prefixed text) and the
    hash happen in :func:`kizen_sync.source.sqlite_fingerprint`. Measured on the 1M-row bench
    table (loaded 2-core machine): one variadic call per row 3.7 s for the fingerprint scan,
    ``quote()`` per column concatenated in SQL + a one-argument Python hash 5.0 s; the previous
    per-column ``CASE typeof(...)`` SQL + md5 change stream took 12.0 s (best of 3).
    """

    type = Text()
    inherit_cache = True
    name = "kizen_fingerprint"


@compiles(SqliteFingerprint)
def _fingerprint_sqlite(element: SqliteFingerprint, compiler: SQLCompiler, **kw: Any) -> str:
    return f"kizen_fingerprint({compiler.process(element.clauses, **kw)})"


def _lit(value: str) -> ColumnElement[str]:
    # Only for our own constants (no quotes inside): keeps them out of the bound parameters.
    return literal_column(f"'{value}'", Text)


def _length_prefixed(text: ColumnElement[Any], length: Any = func.length) -> ColumnElement[str]:
    """``length(v) || ':' || v``: readable back by its length, whatever ``v`` contains."""
    return cast(length(text), Text).op("||")(_lit(":")).op("||")(text)


def _pg_text(col: ColumnElement[Any], version: tuple[int, ...]) -> ColumnElement[str]:
    kind = col.type
    epoch = version >= (14,)  # extract() returns exact numeric since 14 (double before)
    if isinstance(kind, DateTime):
        if epoch:
            return cast(extract("epoch", col), Text)
        value = func.timezone(_lit("UTC"), col) if kind.timezone else col
        return func.to_char(value, _lit('YYYY-MM-DD"T"HH24:MI:SS.US'))
    if isinstance(kind, Date):
        if epoch:
            return cast(extract("epoch", col), Text)
        return func.to_char(col, _lit("YYYY-MM-DD"))
    if isinstance(kind, Boolean):
        return case((col, _lit("t")), (not_(col), _lit("f")))
    if isinstance(kind, Integer | Float):
        return cast(col, Text)  # float text is the shortest exact form since PostgreSQL 12
    if isinstance(kind, Numeric):
        if version >= (13,):
            return cast(func.trim_scale(col), Text)
        as_text = cast(col, Text)
        trimmed = func.rtrim(func.rtrim(as_text, _lit("0")), _lit("."))
        return case((func.strpos(as_text, _lit(".")) > 0, trimmed), else_=as_text)
    if isinstance(kind, JSON | JSONB):
        return _length_prefixed(cast(cast(col, JSONB), Text), func.octet_length)
    return _length_prefixed(cast(col, Text), func.octet_length)


def canonical_text(
    col: ColumnElement[Any], dialect: str, *, server_version: tuple[int, ...] = (15,)
) -> ColumnElement[str]:
    """The canonical text of one column value (NULL stays NULL), per dialect and column type.

    ``server_version`` is the PostgreSQL version (``trim_scale`` needs 13, exact ``extract``
    14). SQLite renders in Python (``kizen_canonical``, the per-value part of the
    fingerprint function).
    """
    if dialect == "postgresql":
        return _pg_text(col, server_version)
    if dialect == "sqlite":
        return func.kizen_canonical(col, type_=Text)
    return _length_prefixed(cast(col, Text))


def mapping_signature(sync: SyncConfig) -> str:
    """A short hash of everything in the sync that decides what a row is sent as.

    The object, the identity and each field mapping without ``sensitive`` (which only decides
    what the audit keeps). Names, descriptions, schedules, guards and partitions are left
    out: changing them must not re-plan the table.
    """
    spec = {
        "object": sync.object,
        "identity": sync.identity.model_dump(mode="json"),
        "fields": [f.model_dump(mode="json", exclude={"sensitive"}) for f in sync.fields],
    }
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


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


@dataclass(frozen=True)
class ArchiveCounts:
    """What the mass-archive guard needs, from a key-only anti-join (no fingerprint).

    ``deleted`` and ``synced`` are exactly :attr:`DiffCounts.deleted` and
    :attr:`DiffCounts.synced` of the same scope.
    """

    deleted: int
    synced: int


@dataclass
class ChangeTally:
    """Counts the change stream as it goes by, so ``unchanged`` needs no second scan.

    In scope, every live (not archived) state row is deleted, changed or unchanged, so
    ``unchanged = synced - deleted - changed`` where ``changed`` counts only CHANGED rows
    whose state is live and whose fingerprint differs (a restore of an archived row is not in
    ``synced``; a ``full_refresh`` row with an equal fingerprint is unchanged). Feed it every
    row of one complete :meth:`ChangeDetector.iter_changes`; ``complete`` stays False when
    the caller stopped early, and then only :meth:`ChangeDetector.counts` can tell.
    """

    new: int = 0
    changed: int = 0
    restored: int = 0
    deleted: int = 0
    complete: bool = False

    def add(self, change: ChangedRow) -> None:
        """Count one streamed row."""
        if change.kind is ChangeKind.NEW:
            self.new += 1
        elif change.kind is ChangeKind.DELETED:
            self.deleted += 1
        elif change.state is None or change.state.archived:
            self.restored += 1
        elif change.state.fingerprint is None or change.state.fingerprint != change.fingerprint:
            self.changed += 1

    def unchanged(self, archive: ArchiveCounts) -> int:
        """Unchanged rows in scope, given the archive counts of the same scope."""
        return max(0, archive.synced - archive.deleted - self.changed)


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
        """The SQL fingerprint of a source row (64-bit hash text of the canonical encoding)."""
        dialect = self.warehouse.dialect
        columns = [self.source.column(c) for c in fingerprint_columns(self.sync)]
        signature = cast(literal(mapping_signature(self.sync)), Text)
        if dialect == "sqlite":
            return SqliteFingerprint(signature, *columns)
        info = self.warehouse.engine.dialect.server_version_info or (0,)
        version = tuple(v for v in info if isinstance(v, int))
        parts = [
            func.coalesce(canonical_text(c, dialect, server_version=version), Char(_NULL))
            for c in columns
        ]
        return RowHash(signature, *parts)

    def fingerprint_query(self, partition: Partition | None = None) -> Select[str, str]:
        """``SELECT source_key, fingerprint`` over the source (for inspection and tests)."""
        stmt = select(
            self.source.key_expr().label("source_key"), self.fingerprint_expr().label("fingerprint")
        )
        stmt = stmt.select_from(self.source.selectable)
        where = self.source.partition_clause(partition)
        return stmt if where is None else stmt.where(where)

    def _state_query(self, partition: Partition | None, keys: Sequence[str] | None) -> Select[Any]:
        """The in-scope state rows of this sync (bucket and ``only_keys`` applied)."""
        state = self.store.tables.state
        st_q = select(
            state.c.source_key,
            state.c.kizen_id,
            state.c.fingerprint,
            state.c.values_json,
            state.c.archived,
        ).where(state.c.sync_name == self.sync.name)
        if partition is not None and partition.buckets:
            st_q = st_q.where(KeyBucket(state.c.source_key, partition.buckets) == partition.bucket)
        if keys is not None:
            st_q = st_q.where(state.c.source_key.in_(keys))
        return st_q

    def _source_query(
        self,
        columns: list[ColumnElement[Any]],
        partition: Partition | None,
        keys: Sequence[str] | None,
    ) -> Select[Any]:
        """``SELECT columns`` over the in-scope source rows (partition and ``only_keys``)."""
        src_q = select(*columns).select_from(self.source.selectable)
        where = self.source.partition_clause(partition)
        if where is not None:
            src_q = src_q.where(where)
        if keys is not None:
            src_q = src_q.where(self.source.key_expr().in_(keys))
        return src_q

    def _diff(
        self,
        partition: Partition | None,
        keys: Sequence[str] | None,
        *,
        with_rows: bool,
    ) -> list[_Part]:
        """The joins to run and the SQL predicates of each change kind in them."""
        source = self.source
        sqlite = self.warehouse.dialect == "sqlite"
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
        src_q = self._source_query(src_cols, partition, keys)
        if sqlite:
            # LIMIT -1 (no limit) keeps SQLite from flattening the subquery into the join,
            # which would paste the fingerprint call into every predicate that reads it: the
            # counts evaluated it twice per row. Now it runs once per row, as a co-routine.
            src_q = src_q.limit(-1)
        st_q = self._state_query(partition, keys)
        src, st = src_q.subquery("src"), st_q.subquery("st")
        windowed = partition is not None and not partition.buckets
        # PostgreSQL answers the FULL OUTER JOIN with one hash join. SQLite would run it as a
        # nested loop over two subqueries (quadratic), so there the source side is a LEFT JOIN
        # that uses the state primary key, and vanished keys come from an EXCEPT (sorted).
        split = sqlite
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
            # Key-only: the EXCEPT must not compute fingerprints.
            src_keys = self._source_query([key.label("k")], partition, keys)
            vanished = select(st_q.subquery("st_keys").c.source_key).except_(src_keys)
            gone_st = st_q.where(self.store.tables.state.c.source_key.in_(vanished)).subquery("st")
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

    def archive_counts(
        self, partition: Partition | None = None, only_keys: Collection[str] | None = None
    ) -> ArchiveCounts:
        """The guard's figures (``deleted``, ``synced``) from keys alone: no fingerprint.

        A normal run needs only these before the first write; the expensive fingerprint scan
        then happens once, in :meth:`iter_changes`. Deleted = live state rows whose key has
        no live source row (absent or soft-deleted); a time window only sees soft deletes.
        """
        self._prepare(partition)
        source = self.source
        soft = source.soft_deleted()
        windowed = partition is not None and not partition.buckets
        deleted = synced = 0
        for keys in _batches(only_keys):
            st = self._state_query(partition, keys).subquery("st")
            alive = st.c.archived != true()
            if windowed:
                cols: list[ColumnElement[Any]] = [source.key_expr().label("k")]
                if soft is not None:
                    cols.append(case((soft, 1), else_=0).label("sd"))
                src = self._source_query(cols, partition, keys).subquery("src")
                gone = and_(alive, src.c.sd == 1) if soft is not None else false()
                stmt = select(func.count().filter(alive), func.count().filter(gone)).select_from(
                    src.join(st, src.c.k == st.c.source_key)
                )
            else:
                live_q = self._source_query([source.key_expr().label("k")], partition, keys)
                if soft is not None:
                    live_q = live_q.where(not_(soft))
                if self.warehouse.dialect == "sqlite":
                    # SQLite builds the IN list once (an ephemeral index); a correlated NOT
                    # EXISTS would rescan the source per state row.
                    missing: ColumnElement[bool] = st.c.source_key.not_in(live_q)
                    stmt = select(_count_if(alive), _count_if(and_(alive, missing)))
                    stmt = stmt.select_from(st)
                else:
                    # PostgreSQL: an outer join in FROM becomes one hash join. NOT IN over a
                    # million keys would not fit work_mem (a per-row subplan), and NOT EXISTS
                    # inside an aggregate is a correlated subplan too: both quadratic.
                    live = live_q.subquery("live")
                    joined = st.outerjoin(live, live.c.k == st.c.source_key)
                    missing = live.c.k.is_(None)
                    stmt = select(_count_if(alive), _count_if(and_(alive, missing)))
                    stmt = stmt.select_from(joined)
            with self.warehouse.connect() as conn:
                row = conn.execute(stmt).one()
            synced += int(row[0] or 0)
            deleted += int(row[1] or 0)
        return ArchiveCounts(deleted=deleted, synced=synced)

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
                sums = [_count_if(p).label(n) for n, p in part.predicates.items()]
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


def _count_if(predicate: ColumnElement[bool]) -> ColumnElement[int]:
    # sum(CASE) rather than count(*) FILTER: SQLite has FILTER only since 3.30.
    return func.coalesce(func.sum(case((predicate, 1), else_=0)), 0)


def _batches(keys: Collection[str] | None) -> Iterator[list[str] | None]:
    if keys is None:
        yield None
        return
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), _KEYS_PER_QUERY):
        yield ordered[start : start + _KEYS_PER_QUERY]
