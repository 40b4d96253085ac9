"""Jobs and schedules of one sync: the incremental sync, its schedule, the retry of failures."""

import dagster as dg

from dagster_project.assets import SyncAssets

__all__ = ["build_sync_jobs"]


def build_sync_jobs(assets: SyncAssets) -> dg.Definitions:
    """``<sync>_sync`` (plan + apply), ``<sync>_retry_failed``, and ``<sync>_schedule`` when
    the sync file gives a ``schedule``.

    Returned as a ``dg.Definitions`` to merge, because Dagster does not export the type of
    ``define_asset_job``'s result. Schedules are created stopped, as Dagster's are by default:
    a new deployment never starts writing to Kizen on its own. Turn one on in the UI
    (Automation) or with ``dagster schedule start <sync>_schedule``.
    """
    sync = assets.sync
    plan_key, apply_key = assets.specs["plan"].key, assets.specs["sync"].key
    # `kizen_sync/sync` names the sync in the UI; `kizen_sync/sync_id` tells it apart from a
    # namesake in another sync file (another business), for the run queue's one-run-per-sync
    # limit in deploy/dagster.yaml.
    tags = {
        "kizen_sync/sync": sync.name,
        "kizen_sync/sync_id": f"{assets.apply.op.pool}/{sync.name}",
    }
    sync_job = dg.define_asset_job(
        f"{sync.name}_sync",
        selection=dg.AssetSelection.assets(plan_key, apply_key),
        description=(
            f"Incremental sync `{sync.name}`: plan and guard, then send only what changed "
            "since the last confirmed run."
        ),
        tags=tags,
    )
    retry_job = dg.define_asset_job(
        f"{sync.name}_retry_failed",
        selection=dg.AssetSelection.assets(apply_key),
        description=(
            f"Re-sends only the records of sync `{sync.name}` whose last attempt failed (the "
            "open failures), e.g. after fixing their rows or the mapping. Other changes wait "
            "for the next run."
        ),
        config=dg.RunConfig(ops={assets.apply.op.name: {"config": {"only_failed": True}}}),
        tags=tags,
    )
    schedules = []
    if sync.schedule is not None:
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{sync.name}_schedule",
                job=sync_job,
                cron_schedule=sync.schedule,
                default_status=dg.DefaultScheduleStatus.STOPPED,
                description=(
                    f"Runs `{sync.name}_sync` on the sync file's cron `{sync.schedule}` (UTC). "
                    "Created stopped, like every Dagster schedule: turn it on here (or "
                    f"`dagster schedule start {sync.name}_schedule`) to start syncing."
                ),
            )
        )
    return dg.Definitions(jobs=[sync_job, retry_job], schedules=schedules)
