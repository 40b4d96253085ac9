"""The guards: the verdicts that stop a run before it writes, decided in one place.

A half-loaded source must never wipe the CRM, and a mapping broken for most rows must not
send the few that happen to pass. Both verdicts are computed here from plain numbers, so the
runner (which raises :class:`~kizen_sync.errors.GuardError`) and the Dagster checks (which
show them) read the same decision and the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kizen_sync.config import SyncConfig
from kizen_sync.errors import GuardError, IdentityCollisionError, RowStateError
from kizen_sync.models import Operation, PlannedOp

__all__ = [
    "MIN_REJECTS_FOR_GUARD",
    "GuardReport",
    "archive_message",
    "guard_report",
    "is_mapping_reject",
    "raise_for_archive",
    "raise_for_rejects",
    "reject_message",
]

#: The reject-rate guard needs at least this many rejected records: one bad row in a run of
#: two is a failed record to fix, not a broken mapping, and must reach the failures list.
MIN_REJECTS_FOR_GUARD = 5


#: Failures that refuse one record for what it is, not for values the mapping cannot take:
#: identity collisions, damaged state rows and unreadable source bytes. They are listed per
#: record and never count against ``max_reject_rate``: a few of them among a few changes
#: are not a broken mapping, and counting them stopped every run of the sync (a
#: "cannot be mapped" GuardError) until someone repaired the rows.
_REFUSED_RECORD_ERRORS = (IdentityCollisionError, RowStateError)


def is_mapping_reject(op: PlannedOp) -> bool:
    """A planned failure the reject-rate guard judges: the row's values cannot be mapped.

    Rows refused for their identity or their state (:data:`_REFUSED_RECORD_ERRORS`) fail on
    their own and do not count.
    """
    return op.op is Operation.FAIL and not isinstance(op.error, _REFUSED_RECORD_ERRORS)


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class GuardReport:
    """The pre-flight checks of one sync, computed without writing anything.

    Attributes:
        would_archive: records the run would archive (0 when ``delete.archive`` is off).
        synced: records currently confirmed in Kizen for this sync.
        archive_fraction: ``would_archive / synced``.
        max_archive_fraction: the sync's ``delete.max_archive_fraction``.
        reject_count: planned records whose values cannot be mapped.
        planned: planned writes (creates, updates, archives and rejects).
        reject_rate: ``reject_count / planned``.
        max_reject_rate: the sync's ``max_reject_rate``.
        archive_failure: why the mass-archive guard stops the run ("" when it passes).
        reject_failure: why the reject-rate guard stops the run ("" when it passes).
    """

    would_archive: int
    synced: int
    archive_fraction: float
    max_archive_fraction: float
    reject_count: int
    planned: int
    reject_rate: float
    max_reject_rate: float
    archive_failure: str = ""
    reject_failure: str = ""

    @property
    def archive_passed(self) -> bool:
        """The mass-archive guard lets the run write."""
        return not self.archive_failure

    @property
    def reject_passed(self) -> bool:
        """The reject-rate guard lets the run write."""
        return not self.reject_failure

    @property
    def reject_guard_armed(self) -> bool:
        """Enough records were rejected for the reject-rate guard to judge at all."""
        return self.reject_count >= MIN_REJECTS_FOR_GUARD

    @property
    def passed(self) -> bool:
        """Both guards pass."""
        return self.archive_passed and self.reject_passed

    @property
    def message(self) -> str:
        """Why a guard failed (empty when both pass)."""
        return " ".join(m for m in (self.archive_failure, self.reject_failure) if m)


def archive_message(
    sync: SyncConfig, would_archive: int, synced: int, *, reread: bool = False
) -> str:
    """Why the mass-archive guard stops this run, or "" when it passes.

    ``reread``: the guard judged the source's second read (a plan too large to keep is read
    again for the apply), so the rows went missing while this run was going on.
    """
    fraction = _fraction(would_archive, synced)
    if not sync.delete.archive or fraction <= sync.delete.max_archive_fraction:
        return ""
    cause = (
        "The source lost these rows after the plan was checked, while the run read it again "
        "for the apply (a reload in progress?): let the load finish, then run again."
        if reread
        else "A partly loaded source table is the usual cause: check it first."
    )
    return (
        f"sync {sync.name} would archive {would_archive} of {synced} synced records "
        f"({fraction:.0%}), more than the {sync.delete.max_archive_fraction:.0%} allowed by "
        f"delete.max_archive_fraction; nothing was sent. {cause} If the deletions are "
        "intended, raise delete.max_archive_fraction for this sync (or set delete.archive: "
        "false to leave the records in Kizen) and run again."
    )


def reject_message(
    sync: SyncConfig, rejects: int, planned: int, examples: Sequence[PlannedOp] = ()
) -> str:
    """Why the reject-rate guard stops this run, or "" when it passes."""
    rate = _fraction(rejects, planned)
    if rejects < MIN_REJECTS_FOR_GUARD or rate <= sync.max_reject_rate:
        return ""
    shown = "; ".join(f"row {op.source_key}: {op.error}" for op in examples)
    return (
        f"sync {sync.name}: {rejects} of {planned} planned records ({rate:.0%}) cannot "
        f"be mapped, more than the {sync.max_reject_rate:.0%} allowed by max_reject_rate; "
        f"nothing was sent. Examples: {shown}"
    )


def guard_report(
    sync: SyncConfig,
    *,
    deleted: int,
    synced: int,
    rejects: int,
    planned: int,
    examples: Sequence[PlannedOp] = (),
) -> GuardReport:
    """Both verdicts for a run that would archive ``deleted`` of ``synced`` records and
    reject ``rejects`` of its ``planned`` writes.
    """
    would_archive = deleted if sync.delete.archive else 0
    return GuardReport(
        would_archive=would_archive,
        synced=synced,
        archive_fraction=_fraction(would_archive, synced),
        max_archive_fraction=sync.delete.max_archive_fraction,
        reject_count=rejects,
        planned=planned,
        reject_rate=_fraction(rejects, planned),
        max_reject_rate=sync.max_reject_rate,
        archive_failure=archive_message(sync, would_archive, synced),
        reject_failure=reject_message(sync, rejects, planned, examples),
    )


def raise_for_archive(sync: SyncConfig, deleted: int, synced: int, *, reread: bool = False) -> None:
    """Stop the run when the mass-archive guard fails (``reread``: see :func:`archive_message`).

    Raises:
        GuardError: with the guard's message and figures.
    """
    would_archive = deleted if sync.delete.archive else 0
    message = archive_message(sync, would_archive, synced, reread=reread)
    if message:
        raise GuardError(message, sync=sync.name, would_archive=would_archive, synced=synced)


def raise_for_rejects(
    sync: SyncConfig, rejects: int, planned: int, examples: Sequence[PlannedOp] = ()
) -> None:
    """Stop the run when the reject-rate guard fails.

    Raises:
        GuardError: with the guard's message and figures.
    """
    message = reject_message(sync, rejects, planned, examples)
    if message:
        raise GuardError(message, sync=sync.name, rejects=rejects)
