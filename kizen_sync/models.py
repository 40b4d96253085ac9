"""Values passed between the stages of a sync: diff -> plan -> apply -> state/audit.

All are plain frozen dataclasses so that the pure stages (mapping, planner) can be tested
without fixtures, and so that the Dagster layer can turn them into metadata without knowing
how they were produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "ARCHIVE_FINGERPRINT",
    "AttemptRecord",
    "ChangeKind",
    "ChangedRow",
    "FieldChange",
    "Operation",
    "Outcome",
    "Partition",
    "PlannedOp",
    "RecordResult",
    "RunCounts",
    "RunOptions",
    "RunReport",
    "StateRow",
]


#: What the ``parked`` table holds for a record whose *archive* failed for good (Kizen's 400,
#: 404 on a record it still lists, 409): its row is gone, so there is no fingerprint to wait
#: for a change of. Runs skip the deletion until the row comes back, or someone asks
#: (``retry``, ``--include-parked``). Never the text of a real fingerprint (those are hashes).
ARCHIVE_FINGERPRINT = "(archive)"


class ChangeKind(StrEnum):
    """What the warehouse diff found for one source key."""

    NEW = "new"  # no confirmed state yet
    CHANGED = "changed"  # fingerprint differs from the confirmed state (or forced)
    DELETED = "deleted"  # confirmed state but the row is gone (or soft-deleted)
    UNCHANGED = "unchanged"
    # new or changed, but it failed with this very fingerprint and is parked: not re-sent
    # (kizen_sync.warehouse.failures); ``row`` is None
    PARKED = "parked"


class Operation(StrEnum):
    """What the plan does for one record."""

    CREATE = "create"  # upsert mode, record does not exist yet (POST .../upsert by identifier)
    UPDATE = "update"  # PATCH by record id, only changed fields
    ARCHIVE = "archive"  # DELETE by record id
    NOOP = "noop"  # fingerprint moved but no Kizen value changed: state refresh, no request
    FAIL = "fail"  # a value could not be mapped; no request is sent


class Outcome(StrEnum):
    """Result of one attempt, as stored in the audit table."""

    SUCCESS = "success"
    RETRY = "retry"  # a failed attempt that will be retried within the run
    FAILED = "failed"  # terminal failure for this run


@dataclass(frozen=True)
class Partition:
    """A slice of a sync's source, for backfills and for spreading a first load.

    Exactly one of (``start``, ``end``) or (``bucket``, ``buckets``) is set. Time windows
    filter ``cursor_column >= start AND cursor_column < end``; hash buckets keep the rows whose
    key hashes to ``bucket`` modulo ``buckets``.
    """

    key: str
    start: datetime | date | None = None
    end: datetime | date | None = None
    bucket: int | None = None
    buckets: int | None = None


@dataclass(frozen=True)
class StateRow:
    """The last state Kizen confirmed for one source key."""

    source_key: str
    kizen_id: str | None
    fingerprint: str | None
    values: dict[str, Any] = field(default_factory=dict)  # canonical values by field API name
    archived: bool = False
    #: Why this state row cannot be trusted (corrupt ``values_json``, a ``kizen_id`` that is
    #: not a record id); the planner fails the record instead of writing through it.
    problem: str | None = None


@dataclass(frozen=True)
class ChangedRow:
    """One row that left the warehouse because it is new, changed or deleted."""

    kind: ChangeKind
    source_key: str
    row: dict[str, Any] | None  # source columns by name; None for DELETED
    state: StateRow | None  # None for NEW
    fingerprint: str | None  # current fingerprint; None for DELETED
    #: Why the warehouse cannot hand this row over (bytes that are not UTF-8); the planner
    #: fails the record, naming ``problem_column``. ``row`` and ``fingerprint`` are None.
    problem: str | None = None
    problem_column: str | None = None


@dataclass(frozen=True)
class FieldChange:
    """One field of a planned write, for display and for the audit's changed-field list."""

    field: str  # API name
    before: Any = None
    after: Any = None
    add: tuple[Any, ...] = ()
    remove: tuple[Any, ...] = ()
    mirror: bool = False  # add/remove resolved against Kizen's current values at apply time


@dataclass(frozen=True)
class PlannedOp:
    """What will be sent for one record. Built by the pure planner.

    ``entries`` is the wire ``fields`` list (``{"name"|"id": ..., "value"|"add_values"|
    "remove_values": ...}``); ``new_values`` is what ``sync_state`` will hold once Kizen
    confirms. ``mirror`` maps field API names to the *desired* set of ids for mirror-mode
    fields: the executor reads Kizen's current values and sends the difference.
    """

    op: Operation
    source_key: str
    kizen_id: str | None = None
    identifier: str | None = None  # name/email used to resolve or create the record
    entries: tuple[dict[str, Any], ...] = ()
    changes: tuple[FieldChange, ...] = ()
    new_values: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    mirror: dict[str, tuple[str, ...]] = field(default_factory=dict)
    needs_lookup: bool = False  # match-key mode, id not remembered yet: lookup first
    restore: bool = False  # record was archived by us: unarchive before the PATCH
    #: A re-key: the row left under this source key and came back under ``source_key``
    #: (same identifier). Its record and state move over; the old state row is dropped in
    #: the same transaction as the new one is written.
    replaces_key: str | None = None
    error: Exception | None = None  # set when op is FAIL

    @property
    def changed_fields(self) -> list[str]:
        """API names of the fields this op writes."""
        return [c.field for c in self.changes]

    @property
    def forgets_state(self) -> bool:
        """True for the planner's "forget the state row" op (docs/architecture.md).

        A DELETED row that is not archived (``delete.archive: false``, or no Kizen id known)
        plans a NOOP with empty ``new_values`` and no fingerprint. Once recorded, its
        ``sync_state`` row must be deleted rather than upserted: a row left with a NULL
        fingerprint would be found "deleted" again by every later diff.
        """
        return self.op is Operation.NOOP and self.fingerprint is None and not self.new_values


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP attempt for one record, written to the audit table."""

    attempt: int
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    http_status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    field_errors: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class RecordResult:
    """The terminal result of applying one planned op."""

    op: PlannedOp
    outcome: Outcome  # SUCCESS or FAILED
    kizen_id: str | None
    attempts: tuple[AttemptRecord, ...] = ()
    created: bool = False  # Kizen answered "created" (not "updated"/"unarchived")


@dataclass
class RunCounts:
    """Per-run counts shown in the CLI summary and in Dagster metadata."""

    created: int = 0
    updated: int = 0
    archived: int = 0
    unchanged: int = 0
    noop: int = 0
    failed: int = 0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The count names in display order: the one list the runs table, the CLI and
        Dagster's metadata all follow.
        """
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, int]:
        """Counts in display order."""
        return {name: getattr(self, name) for name in self.names()}


@dataclass(frozen=True)
class RunOptions:
    """How one sync run behaves (the Dagster run config maps onto this)."""

    dry_run: bool = False
    full_refresh: bool = False  # compare and send every field of every row in scope
    max_records: int | None = None  # cap on planned writes this run (the rest wait)
    partition: Partition | None = None
    only_failed: bool = False  # `kizen-sync retry`: re-send only open failures (parked too)
    include_parked: bool = False  # also re-send parked failures whose rows did not change
    run_id: str | None = None  # defaults to a new UUID; Dagster passes its run id
    lease_wait_s: float | None = None  # wait for another run of the sync; None: the file's


@dataclass
class RunReport:
    """Everything a caller needs to show and judge one run."""

    run_id: str
    sync: str
    partition_key: str | None
    status: str  # "success" | "failed" | "dry_run"
    counts: RunCounts
    started_at: datetime
    finished_at: datetime
    planned: int = 0
    requests: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # sample of failed records
    plan_sample: list[PlannedOp] = field(default_factory=list)  # dry runs: what would be sent
    # Dry runs: field API name -> option/tag id -> label, to show ``plan_sample`` (whose values
    # are ids) with the labels people know (kizen_sync.mapping.labels).
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    would_archive: int = 0
    message: str = ""
    # Parked failures (kizen_sync.warehouse.failures): rows skipped by this run because they
    # failed before with the very values they still have, and since when the oldest is parked.
    parked: int = 0
    parked_since: datetime | None = None
    # Failures of this run that were parked with the same fingerprint before it (a retry or an
    # --include-parked run sending them again): known, not news, not counted by the threshold.
    known_failed: int = 0

    @property
    def new_failures(self) -> int:
        """Failed records of this run that were not already known to fail as they are."""
        return max(0, self.counts.failed - self.known_failed)

    @property
    def failure_rate(self) -> float:
        """New failures over planned writes (0 when nothing was planned); what
        ``failure_threshold`` is compared with.
        """
        return self.new_failures / self.planned if self.planned else 0.0
