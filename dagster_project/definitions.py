"""The code location: ``dg.Definitions`` built from one sync file.

``workspace.yaml`` loads this module. The sync file is ``$KIZEN_SYNC_CONFIG``, or the demo's
``.demo/syncs.yaml`` (create it with ``kizen-sync demo --workdir .demo``); backfills run one
partition per run unless ``KIZEN_SYNC_BACKFILL_POLICY=single_run``.
"""

from dagster_project.build import build_definitions
from dagster_project.settings import backfill_policy_from_env, sync_file_path

__all__ = ["defs"]

defs = build_definitions(sync_file_path(), backfill_policy=backfill_policy_from_env())
