"""Jobs and schedules of one sync: the scheduled incremental sync and the retry of failures."""

import dagster as dg

from dagster_project.assets import SyncAssets, asset_keys
from dagster_project.run_config import SyncRunConfig

__all__ = ["build_sync_jobs"]


def build_sync_jobs(assets: SyncAssets) -> dg.Definitions:
    """``<sync>_sync`` (plan + apply, scheduled by the file's cron) and ``<sync>_retry_failed``.

    Returned as a ``dg.Definitions`` to merge, because Dagster does not export the type of
    ``define_asset_job``'s result.
    """
    sync = assets.sync
    plan_key, apply_key, _ = asset_keys(sync)
    sync_job = dg.define_asset_job(
        f"{sync.name}_sync",
        selection=dg.AssetSelection.assets(plan_key, apply_key),
        description=(
            f"Incremental sync `{sync.name}`: plan and guard, then send only what changed "
            "since the last confirmed run (scheduled)."
        ),
        tags={"kizen_sync/sync": sync.name},
    )
    retry_job = dg.define_asset_job(
        f"{sync.name}_retry_failed",
        selection=dg.AssetSelection.assets(apply_key),
        description=(
            f"Re-sends only the records of sync `{sync.name}` whose last attempt failed (the "
            "open failures), e.g. after fixing their rows or the mapping. Other changes wait "
            "for the next scheduled run."
        ),
        config=dg.RunConfig(ops={assets.apply.op.name: SyncRunConfig(only_failed=True)}),
        tags={"kizen_sync/sync": sync.name},
    )
    schedule = dg.ScheduleDefinition(
        name=f"{sync.name}_schedule",
        job=sync_job,
        cron_schedule=sync.schedule,
        description=f"Runs `{sync.name}_sync` on the sync file's cron `{sync.schedule}` (UTC).",
    )
    return dg.Definitions(jobs=[sync_job, retry_job], schedules=[schedule])
