"""State that cannot misroute: reading ``sync_state`` defensively and asking who holds what.

``sync_state`` decides where every PATCH and DELETE goes, so a damaged row is dangerous: a
``kizen_id`` copied onto another row once made that row's next change overwrite someone
else's record, for good. This module is how the rest of the warehouse code reads state and
checks it before any write:

- :func:`state_row` turns a stored row into a :class:`~kizen_sync.models.StateRow`; a row it
  cannot trust (``values_json`` that is not a JSON object, a ``kizen_id`` that is not a
  record id) comes back with a ``problem`` naming the row, the column and the way out, and
  the planner fails that one record instead of the run crashing on it;
- :class:`StateIntegrity` answers, from the indexed ``identity`` and ``kizen_id`` columns,
  which live state rows hold an identity or a record id, and which records are held by more
  than one live row (damage: both are refused); it also fills ``identity`` on rows written
  before that column existed.

``identity`` is the record's identifier as Kizen's upsert compares it
(:func:`kizen_sync.identity.identity_key`): the collisions :mod:`kizen_sync.engine.resolve`
looks for are exactly the pairs Kizen would resolve to one record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, false, func, select, update

from kizen_sync.config import UUID_RE, SyncConfig
from kizen_sync.identity import identity_key
from kizen_sync.models import StateRow
from kizen_sync.warehouse.codec import decode_values
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.tables import StateTables

__all__ = ["StateIntegrity", "state_row", "way_out"]

_PER_QUERY = 1000


def way_out(tables: StateTables, sync: SyncConfig | str, keys: Collection[str]) -> str:
    """What to do about damaged state rows of ``keys``: delete them, and why that is safe."""
    listed = ", ".join(f"'{k}'" for k in sorted(keys))
    name = sync if isinstance(sync, str) else sync.name
    found = "by its identifier or record id column"
    if not isinstance(sync, str):
        match = sync.identity.match_on
        found = (
            f"by its {match} (match_on)"
            if match
            else f"by its record id column {sync.identity.record_id_column!r}"
        )
    return (
        f"delete the wrong row(s) from the sync_state table {tables.state.fullname} "
        f"(sync_name '{name}', source_key {listed}); the next run finds each row's "
        f"record again {found} and writes it"
    )


def state_row(row: Mapping[Any, Any], tables: StateTables, sync: SyncConfig | str) -> StateRow:
    """The state of one stored row; never raises for a damaged one (see the module)."""
    key = row["source_key"]
    kizen_id = row["kizen_id"]
    problem = None
    values: dict[str, Any] = {}
    raw = row["values_json"]
    try:
        values = decode_values(raw)
        if raw and not isinstance(json.loads(raw), dict):
            problem = "values_json is not a JSON object"
    except (ValueError, TypeError) as exc:
        problem = f"values_json is not valid JSON ({exc})"
    if problem is None and kizen_id is not None and not UUID_RE.match(str(kizen_id)):
        problem = f"kizen_id {str(kizen_id)[:60]!r} is not a Kizen record id"
    if problem is not None:
        problem = (
            f"the sync_state row of source key '{key}' is damaged: {problem}; nothing is sent "
            f"through it. To repair, {way_out(tables, sync, [key])}."
        )
    return StateRow(
        source_key=key,
        kizen_id=kizen_id,
        fingerprint=row["fingerprint"],
        values=values,
        archived=bool(row["archived"]),
        problem=problem,
    )


class StateIntegrity:
    """Questions about one sync's state rows, answered from indexed columns.

    Args:
        warehouse: where the state lives.
        tables: the connector's tables there.
        sync: the sync whose rows are asked about.
    """

    def __init__(self, warehouse: Warehouse, tables: StateTables, sync: SyncConfig) -> None:
        self.warehouse = warehouse.state_warehouse  # the state database, when it is another
        self.tables = tables
        self.sync = sync

    def _live(self) -> Any:
        state = self.tables.state
        return and_(state.c.sync_name == self.sync.name, state.c.archived == false())

    def backfill_identities(self) -> int:
        """Fill ``identity`` on the rows written before it existed; returns how many.

        Cheap once done: only rows whose ``identity`` is NULL are read (an index lookup).
        """
        match = self.sync.identity.match_on
        state = self.tables.state
        stmt = select(state.c.source_key, state.c.values_json).where(
            state.c.sync_name == self.sync.name, state.c.identity.is_(None)
        )
        with self.warehouse.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return 0
        filled = []
        for key, raw in rows:
            try:
                identifier = decode_values(raw).get(match) if match else None
            except (ValueError, TypeError):
                identifier = None  # a damaged row: the planner reports it
            text = identifier if isinstance(identifier, str) else None
            filled.append({"k": key, "i": identity_key(text)})
        fill = (
            update(state)
            .where(state.c.sync_name == self.sync.name, state.c.source_key == bindparam("k"))
            .values(identity=bindparam("i"))
        )
        with self.warehouse.engine.begin() as conn:
            conn.execute(fill, filled)
        return len(filled)

    def shared_ids(self) -> dict[str, list[str]]:
        """Kizen ids held by more than one live state row: ``{kizen_id: [source keys]}``."""
        state = self.tables.state
        shared = (
            select(state.c.kizen_id)
            .where(self._live(), state.c.kizen_id.is_not(None))
            .group_by(state.c.kizen_id)
            .having(func.count() > 1)
        )
        stmt = select(state.c.kizen_id, state.c.source_key).where(
            self._live(), state.c.kizen_id.in_(shared)
        )
        out: dict[str, list[str]] = defaultdict(list)
        with self.warehouse.engine.connect() as conn:
            for kizen_id, key in conn.execute(stmt):
                out[kizen_id].append(key)
        return {k: sorted(v) for k, v in out.items()}

    def identity_holders(self, identities: Collection[str]) -> dict[str, set[str]]:
        """Live state rows holding each of ``identities``: ``{identity: {source keys}}``."""
        return self._holders(self.tables.state.c.identity, identities)

    def id_holders(self, ids: Collection[str]) -> dict[str, set[str]]:
        """Live state rows holding each of ``ids``: ``{kizen_id: {source keys}}``."""
        return self._holders(self.tables.state.c.kizen_id, ids)

    def _holders(self, column: Any, values: Collection[str]) -> dict[str, set[str]]:
        state = self.tables.state
        out: dict[str, set[str]] = defaultdict(set)
        with self.warehouse.engine.connect() as conn:
            for batch in _batches(sorted(set(v for v in values if v))):
                stmt = select(column, state.c.source_key).where(self._live(), column.in_(batch))
                for value, key in conn.execute(stmt):
                    out[value].add(key)
        return dict(out)

    def load_state(self, keys: Collection[str]) -> dict[str, StateRow]:
        """The state rows of ``keys`` (damaged ones carry their ``problem``)."""
        state = self.tables.state
        out: dict[str, StateRow] = {}
        with self.warehouse.engine.connect() as conn:
            for batch in _batches(sorted(set(keys))):
                stmt = select(state).where(
                    state.c.sync_name == self.sync.name, state.c.source_key.in_(batch)
                )
                for row in conn.execute(stmt).mappings():
                    out[row["source_key"]] = state_row(row, self.tables, self.sync)
        return out


def _batches(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _PER_QUERY):
        yield values[start : start + _PER_QUERY]
