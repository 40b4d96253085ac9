"""``dg.Definitions`` for one sync file: every sync's source, assets, checks, jobs and
schedule, the failure sensor and the resources. Shared by the code location
(:mod:`dagster_project.definitions`), the ``dg`` component
(:class:`dagster_project.component.KizenSyncComponent`) and the tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project.assets import build_sync_assets
from dagster_project.executors import build_executor
from dagster_project.jobs import build_sync_jobs
from dagster_project.resources import build_resources
from dagster_project.sensors import build_failure_sensor
from dagster_project.translator import KizenSyncTranslator
from kizen_sync.config import load_config
from kizen_sync.errors import ConfigError, ConfigProblem

__all__ = ["build_definitions", "load_dbt_manifest"]


def load_dbt_manifest(path: str | Path) -> Mapping[str, Any]:
    """A dbt ``manifest.json`` (``dbt parse`` writes it to ``target/``).

    Raises:
        ConfigError: the file cannot be read or is not JSON, naming it.
    """
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            [ConfigProblem("dbt_manifest", f"cannot read the dbt manifest {path}: {exc}")]
        ) from None
    if not isinstance(manifest, Mapping) or "nodes" not in manifest:
        raise ConfigError([ConfigProblem("dbt_manifest", f"{path} is not a dbt manifest")])
    return manifest


def build_definitions(
    sync_file: Path,
    *,
    backfill_policy: dg.BackfillPolicy | None = None,
    translator: KizenSyncTranslator | None = None,
    dbt_manifest: str | Path | Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """Sources, assets, checks, jobs, schedules, the failure sensor and resources of ``sync_file``.

    Args:
        sync_file: the sync YAML, the same file the ``kizen-sync`` CLI reads.
        backfill_policy: how backfills are split into runs; None (the default) is Dagster's
            one partition per run, ``dg.BackfillPolicy.single_run()`` one run per backfill.
        translator: how syncs become asset specs (keys, groups, owners, ...); default
            :class:`KizenSyncTranslator`.
        dbt_manifest: a dbt manifest (path or parsed), so that syncs naming
            ``source.dbt_model`` depend on that model's asset (needs ``kizen-sync[dbt]``).

    Raises:
        ConfigError: the sync file or the manifest is invalid, naming every offending key.
    """
    project = load_config(sync_file)
    manifest = (
        load_dbt_manifest(dbt_manifest) if isinstance(dbt_manifest, str | Path) else dbt_manifest
    )
    all_assets = [
        build_sync_assets(
            project,
            sync,
            backfill_policy,
            translator=translator,
            dbt_manifest=manifest,
            sync_file=str(sync_file),
        )
        for sync in project.syncs
    ]
    # Two syncs may read one table: declare its asset once.
    sources = {a.source.key: a.source for a in all_assets if a.source is not None}
    return dg.Definitions.merge(
        dg.Definitions(
            assets=[
                *sources.values(),
                *(d for a in all_assets for d in (a.plan, a.apply, a.backfill)),
            ],
            sensors=[build_failure_sensor(all_assets)],
            resources=build_resources(project, sync_file),
            executor=build_executor(project.executor),
        ),
        *(build_sync_jobs(assets) for assets in all_assets),
    )
