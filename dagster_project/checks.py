"""Asset checks of a sync: the pre-flight guards, the failure rate and long-open failures.

The guards are evaluated by the plan asset and fail with ERROR severity when the next run
would archive or reject too much. They are not Dagster-*blocking*, on purpose: the runner
enforces the same guards before the first write of every run (scheduled, retried, launched
from the UI or the CLI), so ``kizen/<sync>`` still runs, stops before sending anything, and
fails with the guard's own message and numbers. That way every check of the run is evaluated
and says what happened; a check skipped by a failed upstream step would show in the UI as
"Execution failed", which tells nobody anything. The failure-rate and long-open-failures
checks are evaluated by the applying asset itself on every path (success, too many failed
records, a guard stop).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from dagster_project.metadata import (
    OPEN_FAILURES_SHOWN,
    failure_groups_table,
    guard_metadata,
    open_failures_table,
)
from kizen_sync.config import SyncConfig
from kizen_sync.engine.guards import MIN_REJECTS_FOR_GUARD, GuardReport
from kizen_sync.engine.parking import parked_note
from kizen_sync.failure_groups import group_failures
from kizen_sync.models import RunReport

__all__ = [
    "STUCK_AFTER_RUNS",
    "failure_rate_result",
    "failure_rate_spec",
    "failures_left_open_result",
    "failures_left_open_spec",
    "guard_results",
    "guard_specs",
    "stopped_failure_rate_result",
]

#: A record failing in this many runs in a row needs a person, not another retry.
STUCK_AFTER_RUNS = 3


def _archive_guard_name(sync: SyncConfig) -> str:
    return f"{sync.name}_mass_archive_guard"


def _reject_guard_name(sync: SyncConfig) -> str:
    return f"{sync.name}_reject_rate_guard"


def _failure_rate_name(sync: SyncConfig) -> str:
    return f"{sync.name}_failure_rate"


def _left_open_name(sync: SyncConfig) -> str:
    return f"{sync.name}_failures_left_open"


def guard_specs(sync: SyncConfig, plan_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The two guards, evaluated by the plan asset (enforced by the runner itself)."""
    return [
        dg.AssetCheckSpec(
            _archive_guard_name(sync),
            asset=plan_key,
            description=(
                f"Fails when the next run would archive more than "
                f"{sync.delete.max_archive_fraction:.0%} (delete.max_archive_fraction) of the "
                "records currently in sync: a half-loaded or emptied source table must never "
                "wipe the CRM, and the run itself then stops before any write. Metadata: how many "
                "records would be archived, of how many, and the limit. If the deletions are "
                "real, raise the limit in the sync file."
            ),
        ),
        dg.AssetCheckSpec(
            _reject_guard_name(sync),
            asset=plan_key,
            description=(
                f"Fails when more than {sync.max_reject_rate:.0%} (max_reject_rate) of the "
                "planned records cannot be mapped to Kizen values (a broken mapping should be "
                "fixed, not half-applied); the run itself then stops before any write. Enforced "
                f"from {MIN_REJECTS_FOR_GUARD} rejected records on: fewer are failed records to "
                "fix, and the check says so."
            ),
        ),
    ]


def guard_results(sync: SyncConfig, guard: GuardReport) -> list[dg.AssetCheckResult]:
    """Results of both guards, each carrying every number behind the verdict."""
    metadata = guard_metadata(guard)
    # The runner's own verdicts (kizen_sync.engine.guards), which raise GuardError in a run.
    archive_ok, reject_ok = guard.archive_passed, guard.reject_passed
    reject_note: str | None = None
    if not reject_ok:
        reject_note = guard.reject_failure
    elif not guard.reject_guard_armed and guard.reject_count:
        reject_note = (
            f"Not enforced: {guard.reject_count} rejected record(s) ({guard.reject_rate:.0%} of "
            f"{guard.planned}) is below the minimum of {MIN_REJECTS_FOR_GUARD} the guard needs; "
            "they go to the failures list instead."
        )
    return [
        dg.AssetCheckResult(
            check_name=_archive_guard_name(sync),
            passed=archive_ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=None if archive_ok else guard.archive_failure,
        ),
        dg.AssetCheckResult(
            check_name=_reject_guard_name(sync),
            passed=reject_ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=reject_note,
        ),
    ]


def failure_rate_spec(sync: SyncConfig, key: dg.AssetKey) -> dg.AssetCheckSpec:
    """The failure-rate check of an applying asset."""
    return dg.AssetCheckSpec(
        _failure_rate_name(sync),
        asset=key,
        description=(
            "Share of this run's planned records that Kizen rejected or that could not be "
            "mapped. Passes when none failed; WARN when some failed but no more than "
            f"failure_threshold ({sync.failure_threshold:.0%}); ERROR above it, and the run "
            "fails. Failed records are listed in the materialization's metadata and in the "
            "warehouse view kizen_sync_open_failures."
        ),
    )


def failure_rate_result(
    sync: SyncConfig, report: RunReport, sync_file: str | None = None
) -> dg.AssetCheckResult:
    """The failure-rate verdict of one run (a dry run judges its mapping rejects).

    Parked failures (rows that failed before and have not changed, so the run skipped them)
    are a WARN with their count and age, never an ERROR: they are known, not news. The
    commands the note suggests name ``sync_file``, the file this code location reads.
    """
    rate = report.failure_rate
    over = rate > sync.failure_threshold
    parked_age = (
        (report.finished_at - report.parked_since).total_seconds() if report.parked_since else 0.0
    )
    return dg.AssetCheckResult(
        check_name=_failure_rate_name(sync),
        passed=report.counts.failed == 0 and report.parked == 0,
        severity=dg.AssetCheckSeverity.ERROR if over else dg.AssetCheckSeverity.WARN,
        description=" ".join(
            part
            for part in (
                (
                    f"{report.counts.failed} of {report.planned} records failed ({rate:.0%}); "
                    f"the run fails above {sync.failure_threshold:.0%}."
                )
                if report.counts.failed
                else "",
                parked_note(sync.name, report.parked, report.parked_since, sync_file),
            )
            if part
        )
        or None,
        metadata={
            "failed": dg.MetadataValue.int(report.counts.failed),
            "new_failures": dg.MetadataValue.int(report.new_failures),
            "planned": dg.MetadataValue.int(report.planned),
            "failure_rate": dg.MetadataValue.float(rate),
            "failure_threshold": dg.MetadataValue.float(sync.failure_threshold),
            "parked": dg.MetadataValue.int(report.parked),
            "parked_age_s": dg.MetadataValue.float(max(0.0, parked_age)),
            "failure_reasons": failure_groups_table(group_failures(report.failures)),
        },
    )


def stopped_failure_rate_result(sync: SyncConfig, reason: str) -> dg.AssetCheckResult:
    """The failure-rate verdict of a run stopped before its first write: no record failed."""
    return dg.AssetCheckResult(
        check_name=_failure_rate_name(sync),
        passed=True,
        description=f"No record was sent, so none failed: {reason}",
        metadata={"failed": dg.MetadataValue.int(0), "stopped_before_any_write": True},
    )


def failures_left_open_spec(sync: SyncConfig, key: dg.AssetKey) -> dg.AssetCheckSpec:
    """The check that flags records failing run after run."""
    return dg.AssetCheckSpec(
        _left_open_name(sync),
        asset=key,
        description=(
            f"Records of sync {sync.name} that failed in {STUCK_AFTER_RUNS} or more runs since "
            "their last success: retrying alone will not fix them; the row or the mapping "
            "needs a look (Kizen's message is in the table). Evaluated after every run from "
            "the warehouse view kizen_sync_open_failures."
        ),
    )


def failures_left_open_result(
    sync: SyncConfig, open_failures: Sequence[Mapping[str, Any]]
) -> dg.AssetCheckResult:
    """WARN when some open failures have failed in :data:`STUCK_AFTER_RUNS` runs or more."""
    stuck = [r for r in open_failures if (r.get("failed_runs") or 0) >= STUCK_AFTER_RUNS]
    return dg.AssetCheckResult(
        check_name=_left_open_name(sync),
        passed=not stuck,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(stuck)} record(s) failed in {STUCK_AFTER_RUNS}+ runs in a row."
            if stuck
            else None
        ),
        metadata={
            "open_failures": dg.MetadataValue.int(len(open_failures)),
            "left_open": dg.MetadataValue.int(len(stuck)),
            "after_runs": dg.MetadataValue.int(STUCK_AFTER_RUNS),
            "failure_reasons": failure_groups_table(group_failures(stuck)),
            "records": open_failures_table(stuck[:OPEN_FAILURES_SHOWN]),
        },
    )
