"""What a run counts as news: new or changed failures, not the ones already parked.

The guards and ``failure_threshold`` exist to catch a run that suddenly goes wrong. Rows that
already failed with exactly the values they still have (parked, see
:mod:`kizen_sync.warehouse.failures`) are not news: a normal run does not even plan them, and
a run that re-sends them on request (``kizen-sync retry``, ``--include-parked``, the Dagster
retry job) does not count their failures against itself. A retry is never stopped by the
reject-rate guard because of the very rows it was asked to retry.

Pure: the runner hands in what the store knows before the run.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike

from kizen_sync.models import ARCHIVE_FINGERPRINT, Operation, PlannedOp, RecordResult

__all__ = ["KnownFailures", "parked_note"]


@dataclass(frozen=True)
class KnownFailures:
    """The failures a run already knows about before it starts.

    Attributes:
        parked: source key -> the fingerprint its parked failure was recorded with (loaded
            only for runs that send parked records again).
        asked: the keys a retry was asked to re-send (every open failure of the sync).
        classes: source key -> the error class of its parked failure (every parked record).
    """

    parked: Mapping[str, str] = field(default_factory=dict)
    asked: Collection[str] = frozenset()
    classes: Mapping[str, str] = field(default_factory=dict)

    def known_reject(self, op: PlannedOp) -> bool:
        """A row the planner rejects that is not news for the reject-rate guard: a retry was
        asked to re-send it, it is parked with the very fingerprint it has now, or it is
        parked and fails again with the same error class.

        The last case is a mapping edit: it moves every fingerprint (the mapping is part of
        it), so every parked row is planned again. Rows that were failing before and still
        fail the same way are no sign of a broken mapping, and must not stop the run before
        any write (which would leave them planned again, and the run stopped, every time);
        their failures still count against ``failure_threshold`` (:meth:`known_failure`)
        unless their fingerprint is the parked one.
        """
        if op.op is not Operation.FAIL:
            return False
        if op.source_key in self.asked or self._unchanged(op):
            return True
        error = op.error
        error_class = getattr(error, "error_class", type(error).__name__)
        return error is not None and self.classes.get(op.source_key) == error_class

    def known_archive(self, op: PlannedOp) -> bool:
        """An archive that is not news: it failed for good before (parked), or a retry was
        asked to re-send it.
        """
        if op.op is not Operation.ARCHIVE:
            return False
        return op.source_key in self.asked or self.parked.get(op.source_key) == ARCHIVE_FINGERPRINT

    def is_known(self, op: PlannedOp) -> bool:
        """A reject or an archive the guards' budgets let through uncounted."""
        return self.known_reject(op) or self.known_archive(op)

    def known_failure(self, result: RecordResult) -> bool:
        """A failed record that had already failed (and was parked) with the same values."""
        return self._unchanged(result.op)

    def _unchanged(self, op: PlannedOp) -> bool:
        if op.op is Operation.ARCHIVE:  # a deletion whose archive had failed for good
            return self.parked.get(op.source_key) == ARCHIVE_FINGERPRINT
        return op.fingerprint is not None and self.parked.get(op.source_key) == op.fingerprint


def parked_note(
    sync: str, parked: int, since: datetime | None, config: str | PathLike[str] | None = None
) -> str:
    """``30 parked failures, unchanged since 2026-01-05 14:02 UTC; ...`` ("" for none).

    ``config`` is the sync file as the reader should type it: where the note is read away from
    the command that ran (Dagster's UI), or copied from a run that was given ``--config F``,
    the commands it suggests must name the file.
    """
    if parked <= 0:
        return ""
    when = f", unchanged since {since:%Y-%m-%d %H:%M} UTC" if since is not None else ""
    noun = "failure" if parked == 1 else "failures"
    where = f" --config {shlex.quote(str(config))}" if config else ""
    return (
        f"{parked} parked {noun}{when} (not re-sent until the row or the mapping changes; "
        f"`kizen-sync failures{where} --sync {sync}` lists them, "
        f"`kizen-sync retry{where} --sync {sync}` sends them again)."
    )
