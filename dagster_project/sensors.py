"""The run-failure sensor: says which sync failed and with what counts, where people look.

It reports in the sensor's log and as an observation on ``kizen/<sync>`` (so the failure is in
that asset's event history next to its materializations), and notifies nobody outside
Dagster: alerting channels are a deployment choice, added on top of this sensor.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from dagster_project.assets import SyncAssets, asset_keys
from kizen_sync.models import RunCounts

__all__ = ["REPORTED_KEYS", "build_failure_sensor"]

#: Failure metadata copied onto the observation (counts of a run, numbers of a guard).
REPORTED_KEYS = (
    *RunCounts.names(),
    "planned",
    "failure_rate",
    "would_archive",
    "synced",
    "error_class",
    "summary",
)


def _step_owners(all_assets: Sequence[SyncAssets]) -> dict[str, tuple[str, dg.AssetKey]]:
    """Step key -> (sync name, key of the sync's records asset)."""
    owners: dict[str, tuple[str, dg.AssetKey]] = {}
    for assets in all_assets:
        records_key = asset_keys(assets.sync)[1]
        for definition in (assets.plan, assets.apply, assets.backfill):
            owners[definition.op.name] = (assets.sync.name, records_key)
    return owners


def build_failure_sensor(all_assets: Sequence[SyncAssets]) -> dg.SensorDefinition:
    """A run-failure sensor over every job of the code location (UI launches included)."""
    owners = _step_owners(all_assets)

    @dg.run_failure_sensor(
        name="kizen_sync_run_failures",
        description=(
            "Reports every failed kizen-sync run: which sync, why, and the run's counts, in "
            "the sensor log and as an observation on the sync's `kizen/<sync>` asset."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def kizen_sync_run_failures(
        context: dg.RunFailureSensorContext,
    ) -> dg.SensorResult | dg.SkipReason:
        run_id = context.dagster_run.run_id
        observations = []
        for event in context.get_step_failure_events():
            owner = owners.get(event.step_key or "")
            if owner is None:
                continue
            sync_name, records_key = owner
            failure = event.step_failure_data
            user = failure.user_failure_data
            reason = (user.description if user else None) or (
                failure.error.message if failure.error else "unknown error"
            )
            details: dict[str, Any] = {
                k: v for k, v in (user.metadata if user else {}).items() if k in REPORTED_KEYS
            }
            context.log.error(
                f"kizen-sync {sync_name} failed in run {run_id} (step {event.step_key}): "
                f"{reason.strip()}"
            )
            observations.append(
                dg.AssetObservation(
                    asset_key=records_key,
                    description=f"Run {run_id} failed: {reason.strip()}",
                    metadata={
                        "sync": sync_name,
                        "failed_run_id": run_id,
                        "failed_step": event.step_key,
                        "reason": reason.strip(),
                        **details,
                    },
                )
            )
        if not observations:
            return dg.SkipReason(f"run {run_id} failed outside any kizen-sync step")
        return dg.SensorResult(asset_events=observations)

    return kizen_sync_run_failures
