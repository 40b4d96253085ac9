"""Asset checks of a sync: the pre-flight guards, the failure rate and long-open failures.

The guards are evaluated by the plan asset itself and are *blocking*: when one fails with
ERROR severity the plan step fails and ``kizen/<sync>`` is not executed, so an emptied source
stops before a single record is archived. The failure-rate check is evaluated by the applying
asset from its own run; the long-open-failures check reads the audit views only, so it can be
re-run from the UI at any time, without Kizen credentials.
"""

import dagster as dg

from dagster_project.metadata import OPEN_FAILURES_SHOWN, guard_metadata, open_failures_table
from dagster_project.resources import StateStoreResource
from kizen_sync.config import SyncConfig
from kizen_sync.engine.guards import GuardReport
from kizen_sync.engine.parking import parked_note
from kizen_sync.models import RunReport

__all__ = [
    "STUCK_AFTER_RUNS",
    "build_failures_left_open_check",
    "failure_rate_result",
    "failure_rate_spec",
    "guard_results",
    "guard_specs",
]

#: A record failing in this many runs in a row needs a person, not another retry.
STUCK_AFTER_RUNS = 3


def _archive_guard_name(sync: SyncConfig) -> str:
    return f"{sync.name}_mass_archive_guard"


def _reject_guard_name(sync: SyncConfig) -> str:
    return f"{sync.name}_reject_rate_guard"


def _failure_rate_name(sync: SyncConfig) -> str:
    return f"{sync.name}_failure_rate"


def guard_specs(sync: SyncConfig, plan_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The two blocking guards, evaluated by the plan asset."""
    return [
        dg.AssetCheckSpec(
            _archive_guard_name(sync),
            asset=plan_key,
            blocking=True,
            description=(
                f"Stops the sync before any write when it would archive more than "
                f"{sync.delete.max_archive_fraction:.0%} (delete.max_archive_fraction) of the "
                "records currently in sync: a half-loaded or emptied source table must never "
                "wipe the CRM. Metadata: how many records would be archived, of how many, and "
                "the limit. If the deletions are real, raise the limit in the sync file."
            ),
        ),
        dg.AssetCheckSpec(
            _reject_guard_name(sync),
            asset=plan_key,
            blocking=True,
            description=(
                f"Stops the sync before any write when more than {sync.max_reject_rate:.0%} "
                "(max_reject_rate) of the planned records cannot be mapped to Kizen values: a "
                "broken mapping should be fixed, not half-applied."
            ),
        ),
    ]


def guard_results(sync: SyncConfig, guard: GuardReport) -> list[dg.AssetCheckResult]:
    """Results of both guards, each carrying every number behind the verdict."""
    metadata = guard_metadata(guard)
    # The runner's own verdicts (kizen_sync.engine.guards), which raise GuardError in a run.
    archive_ok, reject_ok = guard.archive_passed, guard.reject_passed
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
            description=None if reject_ok else guard.reject_failure,
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


def failure_rate_result(sync: SyncConfig, report: RunReport) -> dg.AssetCheckResult:
    """The failure-rate verdict of one run (a dry run judges its mapping rejects).

    Parked failures (rows that failed before and have not changed, so the run skipped them)
    are a WARN with their count and age, never an ERROR: they are known, not news.
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
        description=parked_note(sync.name, report.parked, report.parked_since) or None,
        metadata={
            "failed": dg.MetadataValue.int(report.counts.failed),
            "new_failures": dg.MetadataValue.int(report.new_failures),
            "planned": dg.MetadataValue.int(report.planned),
            "failure_rate": dg.MetadataValue.float(rate),
            "failure_threshold": dg.MetadataValue.float(sync.failure_threshold),
            "parked": dg.MetadataValue.int(report.parked),
            "parked_age_s": dg.MetadataValue.float(max(0.0, parked_age)),
        },
    )


def build_failures_left_open_check(sync: SyncConfig, key: dg.AssetKey) -> dg.AssetChecksDefinition:
    """A WARN check listing records that stayed failed across several runs."""

    @dg.asset_check(
        asset=key,
        name=f"{sync.name}_failures_left_open",
        description=(
            f"Records of sync {sync.name} that failed in {STUCK_AFTER_RUNS} or more runs since "
            "their last success: retrying alone will not fix them; the row or the mapping "
            "needs a look (Kizen's message is in the table). Reads the warehouse view "
            "kizen_sync_open_failures only, so it can be executed at any time from the UI."
        ),
    )
    def failures_left_open(state_store: StateStoreResource) -> dg.AssetCheckResult:
        with state_store.open_store() as store:
            rows = store.open_failures(sync=sync.name, limit=None)
        stuck = [r for r in rows if (r.get("failed_runs") or 0) >= STUCK_AFTER_RUNS]
        return dg.AssetCheckResult(
            passed=not stuck,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "open_failures": dg.MetadataValue.int(len(rows)),
                "left_open": dg.MetadataValue.int(len(stuck)),
                "after_runs": dg.MetadataValue.int(STUCK_AFTER_RUNS),
                "records": open_failures_table(stuck[:OPEN_FAILURES_SHOWN]),
            },
        )

    return failures_left_open
