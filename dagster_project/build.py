"""``dg.Definitions`` for one sync file: every sync's assets, checks, jobs and schedule,
the failure sensor and the resources. Kept apart from :mod:`dagster_project.definitions`
so that tests and other entry points can build definitions for their own file.
"""

from pathlib import Path

import dagster as dg

from dagster_project.assets import build_sync_assets
from dagster_project.executors import build_executor
from dagster_project.jobs import build_sync_jobs
from dagster_project.resources import build_resources
from dagster_project.sensors import build_failure_sensor
from kizen_sync.config import load_config

__all__ = ["build_definitions"]


def build_definitions(
    sync_file: Path, *, backfill_policy: dg.BackfillPolicy | None = None
) -> dg.Definitions:
    """Assets, checks, jobs, schedules, the failure sensor and resources of ``sync_file``.

    Args:
        sync_file: the sync YAML, the same file the ``kizen-sync`` CLI reads.
        backfill_policy: how backfills are split into runs; None (the default) is Dagster's
            one partition per run, ``dg.BackfillPolicy.single_run()`` one run per backfill.

    Raises:
        ConfigError: the sync file is invalid, naming every offending key.
    """
    project = load_config(sync_file)
    all_assets = [build_sync_assets(project, sync, backfill_policy) for sync in project.syncs]
    return dg.Definitions.merge(
        dg.Definitions(
            assets=[
                a for assets in all_assets for a in (assets.plan, assets.apply, assets.backfill)
            ],
            asset_checks=[check for assets in all_assets for check in assets.checks],
            sensors=[build_failure_sensor(all_assets)],
            resources=build_resources(project, sync_file),
            executor=build_executor(project.executor),
        ),
        *(build_sync_jobs(assets) for assets in all_assets),
    )
