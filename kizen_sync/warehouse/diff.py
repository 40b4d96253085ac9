"""Change detection in the warehouse: the fingerprint of each row, joined with ``sync_state``.

The diff is one anti-join between the source rows (key + fingerprint, :mod:`.fingerprint`)
and the sync's state rows, run where the data is: only new, changed and deleted rows leave
the warehouse, streamed through a server-side cursor in chunks.

A normal run scans once: the guards only need :meth:`ChangeDetector.archive_counts`
(key-only anti-join, no fingerprint); ``unchanged`` is derived from those counts and the
change stream (:class:`ChangeTally`). :meth:`ChangeDetector.counts` still computes every
figure in SQL (one fingerprint scan) for callers that want them without streaming.

Deletes: a hash-bucket partition sees rows that vanished (the bucket of the state key is
computed the same way), but a time-window partition cannot: a deleted row has no cursor value
any more. Time windows therefore only report soft-deleted rows as DELETED; run an unpartitioned
or bucketed diff to catch hard deletes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    MetaData,
    Select,
    Table,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    not_,
    null,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Subquery
from sqlalchemy.types import NullType

from kizen_sync.config import SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.models import ChangedRow, ChangeKind, Partition, StateRow
from kizen_sync.warehouse.constructs import KeyBucket
from kizen_sync.warehouse.dialects.base import lit
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.fingerprint import fingerprint_columns, fingerprint_expr
from kizen_sync.warehouse.integrity import state_row
from kizen_sync.warehouse.source import Source
from kizen_sync.warehouse.state import StateStore
from kizen_sync.warehouse.unreadable import Unreadable

__all__ = ["ArchiveCounts", "ChangeDetector", "ChangeTally", "DiffCounts"]

#: A SELECT of any columns (what the statement builders return).
AnySelect = Select[*tuple[Any, ...]]

_KEYS_PER_QUERY = 5000  # `only_keys` are sent as bound parameters, in batches of this size
_MIRROR_BATCH = 10_000  # state rows read from the state database per round trip


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
    :attr:`DiffCounts.synced` of the same scope. The runner may leave out the deletions it
    skips (archives parked after failing for good) and note in ``known`` those it sends
    again on request: neither is news for the mass-archive guard.
    """

    deleted: int
    synced: int
    known: int = 0  # of ``deleted``: archives that failed for good before, sent again

    @property
    def new(self) -> int:
        """Deletions the mass-archive guard judges: those that are news."""
        return self.deleted - self.known


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
    parked: int = 0  # rows skipped because they are parked (ChangeKind.PARKED)
    parked_live: int = 0  # ... of which have a live state row (a failed update)
    #: full refresh: rows whose fingerprint did not move but that still plan a write or a
    #: failure (compared field by field); the caller counts them, they are not unchanged.
    rewritten: int = 0
    complete: bool = False

    def add(self, change: ChangedRow) -> None:
        """Count one streamed row."""
        if change.kind is ChangeKind.PARKED:
            self.parked += 1
            state = change.state
            self.parked_live += state is not None and not state.archived
        elif change.kind is ChangeKind.NEW:
            self.new += 1
        elif change.kind is ChangeKind.DELETED:
            self.deleted += 1
        elif change.state is None or change.state.archived:
            self.restored += 1
        elif change.state.fingerprint is None or change.state.fingerprint != change.fingerprint:
            self.changed += 1

    def unchanged(self, archive: ArchiveCounts) -> int:
        """Unchanged rows in scope, given the archive counts of the same scope."""
        return max(
            0, archive.synced - archive.deleted - self.changed - self.parked_live - self.rewritten
        )


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
        read = [*sync.source.primary_key, *self.source.row_columns, *fingerprint_columns(sync)]
        self._unreadable = Unreadable(warehouse, self.source, list(dict.fromkeys(read)))
        #: With the state in another database, the diff joins this copy of the sync's keys
        #: and fingerprints, loaded into the source warehouse before each diff.
        self.mirror: Table | None = None
        self._scratch_ready = False  # the mirror's schema was found or created
        if warehouse.state is not None:
            self.mirror = self.store.tables.state.to_metadata(
                MetaData(),
                schema=warehouse.scratch_schema,  # type: ignore[arg-type]  # None: no schema
                name=f"{warehouse.table_prefix}state_mirror",
            )

    @property
    def diff_state(self) -> Table:
        """The state table the diff joins: ``sync_state``, or its mirror in the source."""
        return self.mirror if self.mirror is not None else self.store.tables.state

    def _load_mirror(self) -> None:
        """Replace this sync's rows of the mirror with its keys and fingerprints (no values:
        the changed rows' values are read from the state database as they stream).
        """
        assert self.mirror is not None
        mirror, state = self.mirror, self.store.tables.state
        columns = ["sync_name", "source_key", "kizen_id", "fingerprint", "archived", "identity"]
        read = select(*(state.c[c] for c in columns)).where(state.c.sync_name == self.sync.name)
        source, dialect = self.warehouse, self.warehouse.sql_dialect
        now = datetime.now(UTC)
        try:
            with source.engine.begin() as conn:
                scratch = source.scratch_schema
                # Named in the sync file but not there yet: created, as the state schema is.
                # Looked up first, so that a role allowed to write in an existing schema but
                # not to create one is never refused.
                if (
                    scratch
                    and dialect.has_schemas
                    and not self._scratch_ready
                    and not dialect.schema_exists(conn, scratch)
                ):
                    dialect.create_schema(conn, scratch)
                self._scratch_ready = True
                mirror.create(conn, checkfirst=True)
                conn.execute(delete(mirror).where(mirror.c.sync_name == self.sync.name))
                with self.store.warehouse.engine.connect() as state_conn:
                    result = state_conn.execution_options(yield_per=_MIRROR_BATCH).execute(read)
                    for part in result.partitions():
                        rows = [
                            {**dict(r._mapping), "values_json": "{}", "updated_at": now}
                            for r in part
                        ]
                        dialect.insert_rows(conn, insert(mirror), mirror, rows)
        except sa_exc.DBAPIError as exc:
            raise SourceError(
                f"sync {self.sync.name!r}: cannot load the fingerprint mirror into "
                f"{source.describe()}: {source.safe_message(exc)}",
                sync=self.sync.name,
            ) from None

    def _with_state_values(self, rows: list[ChangedRow]) -> list[ChangedRow]:
        """The changed rows with the values last synced, read from the state database."""
        keys = [r.state.source_key for r in rows if r.state is not None]
        if not keys:
            return rows
        found = self.store.load_state(self.sync, keys)
        out = []
        for row in rows:
            if row.state is not None and row.state.source_key in found:
                row = replace(row, state=found[row.state.source_key])
            out.append(row)
        return out

    # --- expressions -------------------------------------------------------------------------

    def fingerprint_expr(self) -> ColumnElement[str]:
        """The SQL fingerprint of a source row (see :mod:`.fingerprint`)."""
        return fingerprint_expr(self.source)

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
        state = self.diff_state
        st_q = select(
            state.c.source_key,
            state.c.kizen_id,
            state.c.fingerprint,
            state.c.values_json,
            state.c.archived,
            state.c.identity,
        ).where(state.c.sync_name == self.sync.name)
        if partition is not None and partition.buckets:
            st_q = st_q.where(KeyBucket(state.c.source_key, partition.buckets) == partition.bucket)
        if keys is not None:
            st_q = st_q.where(state.c.source_key.in_(keys))
        return self._unreadable.exclude_state(st_q, state.c.source_key, partition)

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
        return self._unreadable.exclude_source(src_q, partition)

    def _diff(
        self,
        partition: Partition | None,
        keys: Sequence[str] | None,
        *,
        with_rows: bool,
        skip_parked: bool = False,
    ) -> list[_Part]:
        """The joins to run and the SQL predicates of each change kind in them.

        With ``skip_parked``, rows whose fingerprint is the one their parked failure was
        recorded with get the extra predicate ``parked`` (see :mod:`.failures`).
        """
        source = self.source
        dialect = self.warehouse.sql_dialect
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
        # Kept apart, so that the fingerprint is computed once per row, not in every
        # predicate that reads it.
        src_q = dialect.isolate(self._source_query(src_cols, partition, keys))
        st_q = self._state_query(partition, keys)
        src, st = src_q.subquery("src"), st_q.subquery("st")
        windowed = partition is not None and not partition.buckets
        # A FULL OUTER JOIN is one hash join where the planner has them; elsewhere the source
        # side is a LEFT JOIN that uses the state primary key, and vanished keys come from an
        # EXCEPT (see Dialect.full_outer_join).
        split = not dialect.full_outer_join
        joined = src.join(
            st, src.c.k == st.c.source_key, isouter=windowed or split, full=not (windowed or split)
        )

        has_src, has_st = src.c.k.is_not(None), st.c.source_key.is_not(None)
        gone: ColumnElement[bool] = src.c.sd == 1 if soft is not None else false()
        live = and_(has_src, not_(gone)) if soft is not None else has_src
        archived = st.c.archived == true()
        same = and_(st.c.fingerprint.is_not(None), st.c.fingerprint == src.c.fp)
        extra: dict[str, ColumnElement[bool]] = {}
        if skip_parked:
            parked = self.store.tables.parked
            pk = (
                select(parked.c.source_key, parked.c.fingerprint)
                .where(parked.c.sync_name == self.sync.name)
                .subquery("pk")
            )
            joined = joined.outerjoin(pk, pk.c.source_key == src.c.k)
            extra["parked"] = and_(pk.c.fingerprint.is_not(None), pk.c.fingerprint == src.c.fp)
        parts = [
            _Part(
                joined,
                {
                    **extra,
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
            gone_st = st_q.where(self.diff_state.c.source_key.in_(vanished)).subquery("st")
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

    def _vanished(
        self, partition: Partition | None, keys: Sequence[str] | None
    ) -> tuple[FromClause, Subquery, ColumnElement[bool], ColumnElement[bool]]:
        """Key-only: (FROM, state subquery, its live rows, its deleted rows) of one scope.

        Deleted = live state rows whose key has no live source row (absent or soft-deleted);
        a time window only sees soft deletes.
        """
        source = self.source
        soft = source.soft_deleted()
        st = self._state_query(partition, keys).subquery("st")
        alive = st.c.archived != true()
        if partition is not None and not partition.buckets:
            cols: list[ColumnElement[Any]] = [source.key_expr().label("k")]
            if soft is not None:
                cols.append(case((soft, 1), else_=0).label("sd"))
            src = self._source_query(cols, partition, keys).subquery("src")
            gone = and_(alive, src.c.sd == 1) if soft is not None else false()
            return src.join(st, src.c.k == st.c.source_key), st, alive, gone
        live_q = self._source_query([source.key_expr().label("k")], partition, keys)
        if soft is not None:
            live_q = live_q.where(not_(soft))
        if self.warehouse.sql_dialect.missing_keys_by_not_in:
            # The IN list is built once (SQLite: an ephemeral index); a correlated NOT EXISTS
            # would rescan the source per state row.
            return st, st, alive, and_(alive, st.c.source_key.not_in(live_q))
        # An outer join in FROM becomes one hash join. On PostgreSQL NOT IN over a million
        # keys would not fit work_mem (a per-row subplan), and NOT EXISTS inside an aggregate
        # is a correlated subplan too: both quadratic.
        live = live_q.subquery("live")
        joined = st.outerjoin(live, live.c.k == st.c.source_key)
        return joined, st, alive, and_(alive, live.c.k.is_(None))

    def archive_count_statements(
        self, partition: Partition | None = None, keys: Sequence[str] | None = None
    ) -> list[AnySelect]:
        """The statement of :meth:`archive_counts` (one row: synced, deleted)."""
        source, _st, alive, gone = self._vanished(partition, keys)
        return [select(_count_if(alive), _count_if(gone)).select_from(source)]

    def archive_counts(
        self, partition: Partition | None = None, only_keys: Collection[str] | None = None
    ) -> ArchiveCounts:
        """The guard's figures (``deleted``, ``synced``) from keys alone: no fingerprint.

        A normal run needs only these before the first write; the expensive fingerprint scan
        then happens once, in :meth:`iter_changes`.
        """
        self._prepare(partition)
        deleted = synced = 0
        for keys in _batches(only_keys):
            (stmt,) = self.archive_count_statements(partition, keys)
            with self.warehouse.connect() as conn:
                row = conn.execute(stmt).one()
            synced += int(row[0] or 0)
            deleted += int(row[1] or 0)
        return ArchiveCounts(deleted=deleted, synced=synced)

    def deleted_identities(
        self, partition: Partition | None = None, only_keys: Collection[str] | None = None
    ) -> dict[str, list[tuple[str, str | None]]]:
        """The rows this scope would archive, by identity: ``{identity: [(key, kizen_id)]}``.

        Key-only, like :meth:`archive_counts`; a re-key (a row back under a new key with
        the same identifier) is found by looking new rows' identities up here.
        """
        self._prepare(partition)
        out: dict[str, list[tuple[str, str | None]]] = {}
        for keys in _batches(only_keys):
            source, st, _alive, gone = self._vanished(partition, keys)
            stmt = (
                select(st.c.identity, st.c.source_key, st.c.kizen_id)
                .select_from(source)
                .where(gone, st.c.identity.is_not(None), st.c.identity != "")
            )
            with self.warehouse.connect() as conn:
                for identity, key, kizen_id in conn.execute(stmt):
                    out.setdefault(identity, []).append((key, kizen_id))
        return out

    def counts(
        self, partition: Partition | None = None, only_keys: Collection[str] | None = None
    ) -> DiffCounts:
        """How many rows are new, changed, deleted, unchanged; no row leaves the warehouse.

        Unreadable rows (:mod:`.unreadable`) are left out and counted as changed.
        """
        self._prepare(partition)
        while True:
            try:
                counts = self._counts(partition, only_keys)
            except SourceError as exc:
                if not self._unreadable.is_decode_error(exc):
                    raise
                if self._unreadable.locate(self._source_query, partition, only_keys) is None:
                    raise
                continue
            extra = len(self._unreadable.keys(partition))
            return replace(counts, changed=counts.changed + extra)

    def _counts(self, partition: Partition | None, only_keys: Collection[str] | None) -> DiffCounts:
        totals = dict.fromkeys(
            ("new", "changed", "deleted", "unchanged", "synced", "source_rows"), 0
        )
        for keys in _batches(only_keys):
            for stmt in self.count_statements(partition, keys):
                with self.warehouse.connect() as conn:
                    row = conn.execute(stmt).one()
                for name, value in row._mapping.items():
                    totals[str(name)] += int(value)
        return DiffCounts(**totals)

    def count_statements(
        self, partition: Partition | None = None, keys: Sequence[str] | None = None
    ) -> list[AnySelect]:
        """The statements of :meth:`counts` (one row of named sums each)."""
        return [
            select(*(_count_if(p).label(n) for n, p in part.predicates.items())).select_from(
                part.source
            )
            for part in self._diff(partition, keys, with_rows=False)
        ]

    def iter_changes(
        self,
        partition: Partition | None = None,
        *,
        full_refresh: bool = False,
        only_keys: Collection[str] | None = None,
        chunk_size: int = 1000,
        skip_parked: bool = False,
    ) -> Iterator[list[ChangedRow]]:
        """Stream the new, changed and deleted rows in chunks of up to ``chunk_size``.

        Rows come through a server-side cursor, so memory stays flat however large the
        source. ``full_refresh`` reports every in-scope row that has state as CHANGED (rows
        without state stay NEW), for backfills that compare every field. ``only_keys`` limits
        the diff to those source keys (the retry path). ``skip_parked`` reports new or
        changed rows that still have the fingerprint of their parked failure as PARKED,
        without their values (:mod:`.failures`); the join is left out when the sync has no
        parked record.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._prepare(partition)
        names = self.source.row_columns
        # Parked failures live with the state: a mirror diff (state in another database)
        # streams their rows as changes, and the planner meets them again.
        skip_parked = (
            skip_parked and self.mirror is None and self.store.failures.has_parked(self.sync)
        )
        for keys in _batches(only_keys):
            for stmt in self.change_statements(
                partition, keys, full_refresh=full_refresh, skip_parked=skip_parked
            ):
                yield from self._stream(stmt, names, chunk_size, partition, keys)
        yield from self._unreadable_changes(partition, only_keys, chunk_size)

    def _unreadable_changes(
        self, partition: Partition | None, only_keys: Collection[str] | None, chunk_size: int
    ) -> Iterator[list[ChangedRow]]:
        """The rows set aside as unreadable, each as a change carrying its problem."""
        keys = self._unreadable.keys(partition)
        if only_keys is not None:
            keys = [k for k in keys if k in set(only_keys)]
        if not keys:
            return
        states = self.store.load_state(self.sync, keys)
        rows = [c for c in self._unreadable.changes(partition, states) if c.source_key in keys]
        for start in range(0, len(rows), chunk_size):
            yield rows[start : start + chunk_size]

    def change_statements(
        self,
        partition: Partition | None = None,
        keys: Sequence[str] | None = None,
        *,
        full_refresh: bool = False,
        skip_parked: bool = False,
    ) -> list[AnySelect]:
        """The statements :meth:`iter_changes` streams (kind, source and state columns)."""
        out: list[AnySelect] = []
        for part in self._diff(partition, keys, with_rows=True, skip_parked=skip_parked):
            p = part.predicates
            parked = p.get("parked")
            whens = []
            if parked is not None:
                whens.append((and_(parked, or_(p["new"], p["changed"])), lit("parked")))
            whens += [
                (p[k.value], lit(k.value))
                for k in (ChangeKind.NEW, ChangeKind.DELETED)
                if k.value in p
            ]
            if "changed" in p:
                changed = or_(p["changed"], p["unchanged"]) if full_refresh else p["changed"]
                whens.append((changed, lit(ChangeKind.CHANGED.value)))
            kind = case(*whens).label("kind")
            columns: list[Any] = [kind]
            for sub in part.subqueries:
                if sub is None:
                    continue
                if parked is None:
                    columns.append(sub)
                    continue
                # A parked row's values are not needed: leave them in the warehouse.
                for column in sub.c:
                    heavy = column.name == "values_json" or column.name in self._value_labels
                    columns.append(
                        case((parked, null()), else_=column).label(column.name) if heavy else column
                    )
            inner = select(*columns)
            inner_q = inner.select_from(part.source).subquery("d")
            out.append(select(inner_q).where(inner_q.c.kind.is_not(None)))
        return out

    def _stream(
        self,
        stmt: Select[Any],
        names: list[str],
        chunk_size: int,
        partition: Partition | None,
        keys: Sequence[str] | None,
    ) -> Iterator[list[ChangedRow]]:
        """Stream ``stmt``; a value that cannot be read raises :class:`UnreadableRows` once
        every such row in scope is set aside, so that the caller reads again.
        """
        try:
            with self.warehouse.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(
                    stmt
                )
                for part in result.partitions():
                    rows = [self._changed_row(r._mapping, names) for r in part]
                    yield self._with_state_values(rows) if self.mirror is not None else rows
        except sa_exc.DBAPIError as exc:
            if self._unreadable.is_decode_error(exc):
                found = self._unreadable.locate(self._source_query, partition, keys)
                if found is not None:
                    raise found from None
            raise SourceError(
                f"sync {self.sync.name!r}: diff failed on {self.warehouse.describe()}: "
                f"{self.warehouse.safe_message(exc)}",
                sync=self.sync.name,
            ) from None

    @property
    def _value_labels(self) -> frozenset[str]:
        return frozenset(f"c{i}" for i in range(len(self.source.row_columns)))

    def _changed_row(self, row: Any, names: list[str]) -> ChangedRow:
        kind = ChangeKind(row["kind"])
        state = None
        if row["source_key"] is not None:
            if kind is ChangeKind.PARKED:
                state = StateRow(
                    source_key=row["source_key"],
                    kizen_id=row["kizen_id"],
                    fingerprint=row["fingerprint"],
                    values={},
                    archived=bool(row["archived"]),
                )
            else:
                state = state_row(row, self.store.tables, self.sync)
        if kind is ChangeKind.PARKED:
            return ChangedRow(kind, row["k"], None, state, row["fp"])
        if kind is ChangeKind.DELETED:
            return ChangedRow(kind, row["source_key"], None, state, None)
        values = {name: row[f"c{i}"] for i, name in enumerate(names)}
        return ChangedRow(kind, row["k"], values, state, row["fp"])

    def _prepare(self, partition: Partition | None) -> None:
        self.store.ensure_schema()
        if self.mirror is not None:
            self._load_mirror()
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
