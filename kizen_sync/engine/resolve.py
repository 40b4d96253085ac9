"""Resolve stage: two planned operations on one Kizen record are caught before any write.

The planner looks at one row at a time, so it cannot see that two rows of one run end on the
same record. Kizen can: its upsert matches identifiers case-insensitively, so
``ann@example.com`` and ``ANN@example.com`` write one record, the second overwriting the
first, and both state rows then point at it (deleting either row would archive the other's
record). A re-keyed table (same e-mail, new primary key) was planned as a create plus an
archive of the same record: the upsert found the record, the DELETE then archived it.

This stage sits between the planner and the executor and works in two passes over the same
ops (the plan, then the apply: the in-memory plan again, or the source streamed a second
time):

- **plan** (:meth:`Resolver.plan_chunk`, both passes): a create whose identity belongs to a
  row this run archives (exactly one) is re-planned as an *update* of that row's record,
  diffed against its last synced values; the op carries ``replaces_key`` and the store
  moves the state row to the new key in the same transaction;
- **observe** (:meth:`Resolver.observe`, first pass only): every op claims its identity
  (:func:`~kizen_sync.identity.identity_key`) and its Kizen id. Claims are kept as 64-bit
  hashes (memory: about 60 bytes per planned write), and each chunk's claims are checked
  against the live state rows of other keys (:class:`StateLookup`, an index lookup);
- **resolve** (:meth:`Resolver.resolve`, the apply): ops whose identity or id is claimed
  twice, or held by another row's state, are held back and sent as failed records once the
  stream has ended, when every row involved is known and can be named; the archive of a
  re-keyed row is dropped (its record lives on under the new key); rows whose state shares a
  Kizen id with another row (damaged state) fail, whether or not they changed. A claim that
  only the second pass makes (the source changed in between) is checked against the claims
  already sent in that pass.

Pure: the state is asked through :class:`StateLookup`, which the runner implements with
:class:`~kizen_sync.warehouse.integrity.StateIntegrity`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from kizen_sync.config import SyncConfig
from kizen_sync.errors import IdentityCollisionError
from kizen_sync.identity import identity_key
from kizen_sync.models import ChangedRow, ChangeKind, Operation, PlannedOp, StateRow

__all__ = ["Resolver", "StateLookup"]

#: Claims checked against the state per query.
CHECK_BATCH = 1000


class StateLookup(Protocol):
    """What the resolve stage asks of the state (live rows of the sync only)."""

    def identity_holders(self, identities: Collection[str]) -> dict[str, set[str]]:
        """``{identity: {source keys}}`` of the live rows holding each identity."""
        ...

    def id_holders(self, ids: Collection[str]) -> dict[str, set[str]]:
        """``{kizen_id: {source keys}}`` of the live rows holding each Kizen id."""
        ...

    def load_state(self, keys: Collection[str]) -> dict[str, StateRow]:
        """The state rows of ``keys``."""
        ...


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass
class _Claims:
    """Hashes claimed once, and those claimed more than once."""

    seen: set[int] = field(default_factory=set)
    twice: set[int] = field(default_factory=set)

    def claim(self, value: int) -> None:
        if value in self.seen:
            self.twice.add(value)
        else:
            self.seen.add(value)


@dataclass
class _Group:
    """Rows held back together: they would write one record."""

    what: str  # "e-mail 'ann@example.com'" / "Kizen record <id>"
    ops: list[PlannedOp] = field(default_factory=list)
    holders: set[str] = field(default_factory=set)  # state rows outside the run


class Resolver:
    """The resolve stage of one run of one sync (see the module docstring).

    Args:
        sync: the sync (its identifier field and whether it is sensitive).
        lookup: the sync's state.
        leaving: ``{identity: [(source key, kizen id)]}`` of the rows this run archives
            (:meth:`~kizen_sync.warehouse.ChangeDetector.deleted_identities`).
        shared_ids: ``{kizen id: [source keys]}`` held by several live state rows.
        way_out: how to repair damaged state rows, given their keys (for messages).
    """

    def __init__(
        self,
        sync: SyncConfig,
        lookup: StateLookup,
        *,
        leaving: dict[str, list[tuple[str, str | None]]] | None = None,
        shared_ids: dict[str, list[str]] | None = None,
        way_out: Callable[[Collection[str]], str] = lambda keys: "repair the sync_state rows",
    ) -> None:
        self.sync = sync
        self.lookup = lookup
        self.leaving = leaving or {}
        self.shared_ids = shared_ids or {}
        self.way_out = way_out
        spec = sync.identifier_mapping
        self._field = spec.field if spec is not None else "identifier"
        self._secret = bool(spec is not None and spec.sensitive)
        self.restart()
        # damaged state
        self._damaged: dict[str, tuple[str, list[str]]] = {
            key: (kizen_id, keys) for kizen_id, keys in self.shared_ids.items() for key in keys
        }

    def restart(self) -> None:
        """Forget what the first pass observed (it is starting again)."""
        self._identities = _Claims()
        self._ids = _Claims()
        self._archive_ids: dict[int, str] = {}  # id hash -> key, of the archives (few)
        self._pending: list[PlannedOp] = []
        self._replaced: dict[str, PlannedOp] = {}  # old key -> the re-keyed op
        self._held_by_state: dict[str, set[str]] = {}  # op key -> state rows holding its claim
        # keys whose record another row of this run would write -> those rows
        self._involved: dict[str, set[str]] = {}
        self._leaving_keys = {key for rows in self.leaving.values() for key, _ in rows}
        self._late = _Claims()  # second-pass claims
        self.finished = False

    # --- plan (both passes) ---------------------------------------------------------------

    def plan_chunk(
        self, chunk: list[ChangedRow], plan: Callable[[ChangedRow], PlannedOp]
    ) -> list[PlannedOp]:
        """Plan a chunk of changes, re-keys as updates of the record they keep."""
        ops = [plan(change) for change in chunk]
        if not self.leaving:
            return ops
        moves: dict[int, str] = {}
        for i, op in enumerate(ops):
            if op.op is not Operation.CREATE or chunk[i].kind is not ChangeKind.NEW:
                continue
            candidates = self.leaving.get(identity_key(op.identifier), [])
            if len(candidates) == 1 and candidates[0][1] is not None:
                moves[i] = candidates[0][0]
        if not moves:
            return ops
        old = self.lookup.load_state(set(moves.values()))
        for i, old_key in moves.items():
            state = old.get(old_key)
            if state is None or state.problem or state.archived or state.kizen_id is None:
                continue
            change = chunk[i]
            moved = ChangedRow(
                kind=ChangeKind.CHANGED,
                source_key=change.source_key,
                row=change.row,
                state=replace(state, source_key=change.source_key, fingerprint=None),
                fingerprint=change.fingerprint,
            )
            ops[i] = replace(plan(moved), replaces_key=old_key)
        return ops

    # --- observe (first pass) -------------------------------------------------------------

    def observe(self, op: PlannedOp) -> None:
        """Note the claims of one planned op (first pass only)."""
        if op.op is Operation.FAIL:
            return
        if op.op is Operation.ARCHIVE or op.forgets_state:
            if op.kizen_id is not None:
                self._archive_ids[_h(op.kizen_id)] = op.source_key
            return
        if op.replaces_key is not None:
            self._replaced[op.replaces_key] = op
        identity = identity_key(op.identifier)
        if identity:
            self._identities.claim(_h(identity))
        if op.kizen_id is not None:
            self._ids.claim(_h(op.kizen_id))
        self._pending.append(op)
        if len(self._pending) >= CHECK_BATCH:
            self._check_state()

    def _check_state(self) -> None:
        """Claims of the pending ops held by other rows' live state."""
        pending, self._pending = self._pending, []
        identities = {identity_key(op.identifier) for op in pending} - {""}
        ids = {op.kizen_id for op in pending if op.kizen_id is not None}
        by_identity = self.lookup.identity_holders(identities) if identities else {}
        by_id = self.lookup.id_holders(ids) if ids else {}
        for op in pending:
            mine = {op.source_key, op.replaces_key}
            others = set(by_identity.get(identity_key(op.identifier), ())) - mine
            if op.op is not Operation.CREATE:
                # An update goes by id: a row leaving this run may share its identifier.
                others -= self._leaving_keys
            if op.kizen_id is not None:
                others |= set(by_id.get(op.kizen_id, ())) - mine
            others -= set(self._damaged)  # reported as damage, with its own way out
            if others:
                self._held_by_state[op.source_key] = others
                for other in others:
                    self._involved.setdefault(other, set()).add(op.source_key)

    def finish(self) -> None:
        """End of the first pass: settle which claims collide."""
        self._check_state()
        for id_hash, key in self._archive_ids.items():
            if id_hash in self._ids.seen and key not in self._replaced:
                # An update and an archive of one record: a misroute in the making.
                self._ids.twice.add(id_hash)
                self._involved.setdefault(key, set())
        # Only the collisions are needed from here on; the second pass keeps its own claims.
        self._identities.seen.clear()
        self._ids.seen.clear()
        self._archive_ids.clear()
        self.finished = True

    @property
    def refused_keys(self) -> set[str]:
        """Keys refused whether or not they are in the stream (damaged state)."""
        return set(self._damaged)

    # --- resolve (the apply) --------------------------------------------------------------

    def resolve(self, ops: Iterable[PlannedOp]) -> Iterator[PlannedOp]:
        """The ops to apply: collisions held back and failed at the end, re-keyed archives
        dropped, damaged rows failed.
        """
        groups: dict[int, _Group] = {}
        by_state: list[PlannedOp] = []
        damaged_done: set[str] = set()
        for op in ops:
            key = op.source_key
            if key in self._damaged:
                damaged_done.add(key)
                yield self._damaged_op(key, op)
            elif op.op is Operation.FAIL:
                yield op
            elif op.op is Operation.ARCHIVE or op.forgets_state:
                partner = self._replaced.get(key)
                if partner is not None and not self._collides(partner):
                    continue  # re-keyed: the record lives on under the partner's key
                if partner is not None or key in self._involved or self._id_twice(op):
                    self._group(groups, op, partner)
                else:
                    yield op
            elif self._in_run_collision(op):
                self._group(groups, op)
            elif key in self._held_by_state or key in self._involved:
                by_state.append(op)
            elif self._late_claim(op):
                yield self._failed(
                    op,
                    f"another row of this run claimed the same {self._what(op)} after the "
                    "plan was checked (the source changed during the run)",
                )
            else:
                yield op
        for group in groups.values():
            keys = sorted({op.source_key for op in group.ops})
            rows = ", ".join(f"'{k}'" for k in keys)
            verb = "would all write" if len(keys) > 1 else "would write"
            held = self._held(group.holders)
            for op in group.ops:
                others = sorted((set(keys) | group.holders) - {op.source_key})
                text = f"source rows {rows} {verb} the Kizen record with {group.what}{held}"
                yield self._failed(op, text, others)
        for op in by_state:
            holders = self._held_by_state.get(op.source_key, set())
            claimants = self._involved.get(op.source_key, set())
            if holders:
                text = (
                    f"source row '{op.source_key}' would write the Kizen record with "
                    f"{self._what(op)}{self._held(holders)}"
                )
            else:
                listed = ", ".join(f"'{k}'" for k in sorted(claimants))
                text = (
                    f"the Kizen record of source row '{op.source_key}' would also be written "
                    f"by row(s) {listed} (same {self._field} but for case)"
                )
            yield self._failed(op, text, sorted(holders | claimants))
        for key in sorted(set(self._damaged) - damaged_done):
            yield self._damaged_op(key, None)

    def _id_twice(self, op: PlannedOp) -> bool:
        return op.kizen_id is not None and _h(op.kizen_id) in self._ids.twice

    def _in_run_collision(self, op: PlannedOp) -> bool:
        identity = identity_key(op.identifier)
        return bool(identity and _h(identity) in self._identities.twice) or self._id_twice(op)

    def _collides(self, op: PlannedOp) -> bool:
        key = op.source_key
        return self._in_run_collision(op) or key in self._held_by_state or key in self._involved

    def _group(
        self, groups: dict[int, _Group], op: PlannedOp, partner: PlannedOp | None = None
    ) -> None:
        """File ``op`` under the claim it collides on (an archive under its partner's)."""
        claimant = partner or op
        identity = identity_key(claimant.identifier)
        if identity and _h(identity) in self._identities.twice:
            anchor = _h("identity:" + identity)
        elif claimant.kizen_id is not None:
            anchor = _h("id:" + claimant.kizen_id)
        else:
            anchor = _h("key:" + claimant.source_key)
        group = groups.setdefault(anchor, _Group(self._what(claimant)))
        group.ops.append(op)
        group.holders |= self._held_by_state.get(claimant.source_key, set())

    def _late_claim(self, op: PlannedOp) -> bool:
        """A claim made twice in the second pass that the first pass did not see collide
        (the source changed in between): the later claimant fails, the first was sent.
        """
        clash = False
        for claim in (identity_key(op.identifier), op.kizen_id):
            if claim:
                value = _h(claim)
                clash = clash or value in self._late.seen
                self._late.claim(value)
        return clash

    @staticmethod
    def _held(holders: set[str]) -> str:
        if not holders:
            return ""
        listed = ", ".join(f"'{k}'" for k in sorted(holders))
        return f", a record that already belongs to row(s) {listed} (in sync_state)"

    def _what(self, op: PlannedOp) -> str:
        if op.identifier and not self._secret:
            return f"{self._field} {op.identifier!r}"
        if op.identifier:
            return f"{self._field} (value withheld: sensitive field)"
        return f"Kizen record {op.kizen_id}"

    def _failed(self, op: PlannedOp, what: str, others: Collection[str] = ()) -> PlannedOp:
        """A FAIL op in place of ``op``: nothing is sent for it."""
        message = (
            f"{what}. A Kizen record belongs to one source row (Kizen's upsert matches "
            f"{self._field} without regard to case), so nothing was sent for these rows. Give "
            "each row its own identifier, or remove the duplicate."
        )
        return PlannedOp(
            op=Operation.FAIL,
            source_key=op.source_key,
            kizen_id=op.kizen_id,
            fingerprint=op.fingerprint,
            error=IdentityCollisionError(
                message,
                source_key=op.source_key,
                others=sorted(set(others) - {op.source_key}),
                identifier=None if self._secret else (op.identifier or op.kizen_id),
                kizen_id=op.kizen_id,
            ),
        )

    def _damaged_op(self, key: str, op: PlannedOp | None) -> PlannedOp:
        kizen_id, keys = self._damaged[key]
        rows = ", ".join(f"'{k}'" for k in keys)
        message = (
            f"sync_state rows {rows} all hold Kizen record {kizen_id}: a record belongs to one "
            f"source row, so none of them is written (nor archived) until this is repaired. "
            f"To repair, {self.way_out(keys)}."
        )
        return PlannedOp(
            op=Operation.FAIL,
            source_key=key,
            kizen_id=kizen_id,
            fingerprint=op.fingerprint if op is not None else None,
            error=IdentityCollisionError(
                message,
                source_key=key,
                others=[k for k in keys if k != key],
                identifier=kizen_id,
                kizen_id=kizen_id,
            ),
        )
