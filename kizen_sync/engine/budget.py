"""The guards' budgets, counted on what the apply actually sends.

The pre-flight guards judge the plan. But a plan too large to keep in memory is streamed from
the warehouse a second time for the apply, and the source can change in between: an ETL
reload (delete, then insert) caught half-way once turned a plan of 21,000 updates into
21,000 archives, and the run reported success. So every op on its way to the executor passes
through :class:`ApplyBudget`, whatever pass produced it: archives and rejected rows are
counted as they go, with the very verdicts of :mod:`.guards` (mass archive against the records
synced at the start of the run, reject rate against the larger of the plan and what has gone
by), and the first op past a budget stops the run with a :class:`~kizen_sync.errors.GuardError`
before it is sent. What was sent before it was within the budget the guard allows. Rejects are
what the plan's guard counts (:func:`~.guards.is_mapping_reject`): rows the resolve stage
refuses (identity collisions, damaged state) are per-record failures here too.

Pure: no I/O, so the same budget applies to an in-memory plan and to a re-read stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator

from kizen_sync.config import SyncConfig
from kizen_sync.engine.guards import archive_message, is_mapping_reject, reject_message
from kizen_sync.errors import GuardError
from kizen_sync.models import Operation, PlannedOp

__all__ = ["ApplyBudget"]


class ApplyBudget:
    """Counts what one apply sends and stops it when a guard's budget is exceeded.

    Args:
        sync: the sync (its ``delete`` policy and ``max_reject_rate``).
        synced: records confirmed in Kizen when the run started (the mass-archive base).
        planned: writes the plan counted (the reject-rate base until more have gone by).
        known: rejects and archives that are not news (a parked row a retry re-sends
            unchanged, an archive that failed for good before,
            :class:`~kizen_sync.engine.parking.KnownFailures`): let through, never counted.
    """

    def __init__(
        self,
        sync: SyncConfig,
        *,
        synced: int,
        planned: int,
        known: Callable[[PlannedOp], bool] | None = None,
    ) -> None:
        self.sync = sync
        self.known = known
        self.synced = synced
        self.planned = planned
        self.archives = 0
        self.rejects = 0
        self.writes = 0
        self._examples: list[PlannedOp] = []

    def admit(self, op: PlannedOp) -> PlannedOp:
        """Count ``op``; raise instead of letting it through when it exceeds a budget.

        Raises:
            GuardError: sending ``op`` would break the mass-archive or reject-rate guard.
        """
        if op.op is Operation.NOOP:
            return op
        self.writes += 1
        known = self.known is not None and self.known(op)
        if op.op is Operation.ARCHIVE and self.sync.delete.archive and not known:
            self.archives += 1
            if archive_message(self.sync, self.archives, self.synced):
                raise self._archive_error()
        elif is_mapping_reject(op) and not known:
            self.rejects += 1
            if len(self._examples) < 3:
                self._examples.append(op)
            base = max(self.planned, self.writes)
            if reject_message(self.sync, self.rejects, base):
                raise self._reject_error(base)
        return op

    def admit_all(self, ops: Iterable[PlannedOp]) -> Iterator[PlannedOp]:
        """``ops`` through :meth:`admit`, lazily."""
        for op in ops:
            yield self.admit(op)

    async def admit_async(self, ops: AsyncIterable[PlannedOp]) -> AsyncIterator[PlannedOp]:
        """``ops`` through :meth:`admit`, lazily (an async stream)."""
        async for op in ops:
            yield self.admit(op)

    def _archive_error(self) -> GuardError:
        sync = self.sync
        sent = self.archives - 1
        return GuardError(
            f"sync {sync.name} stopped during the apply: one more archive would make "
            f"{self.archives} of {self.synced} synced records, more than the "
            f"{sync.delete.max_archive_fraction:.0%} allowed by delete.max_archive_fraction. "
            f"The source changed after the plan was checked (a reload in progress?); {sent} "
            "archive(s) within the budget were sent, nothing after. Check the source, then "
            "run again.",
            sync=sync.name,
            would_archive=self.archives,
            synced=self.synced,
            archived=sent,
        )

    def _reject_error(self, base: int) -> GuardError:
        sync = self.sync
        shown = "; ".join(f"row {op.source_key}: {op.error}" for op in self._examples)
        return GuardError(
            f"sync {sync.name} stopped during the apply: {self.rejects} of {base} records "
            f"cannot be mapped, more than the {sync.max_reject_rate:.0%} allowed by "
            "max_reject_rate (the source changed after the plan was checked?); nothing more "
            f"was sent. Examples: {shown}",
            sync=sync.name,
            rejects=self.rejects,
        )
