"""The code location: everything under ``dagster_project/defs/``, loaded the ``dg`` way.

``workspace.yaml`` (``dagster dev -w workspace.yaml``) and ``dg`` (``dg dev``, ``dg check
defs``, ``dg list defs``; ``[tool.dg]`` in ``pyproject.toml``) both load this module. The
folder holds one :class:`~dagster_project.component.KizenSyncComponent` reading
``$KIZEN_SYNC_CONFIG``, or the demo's ``.demo/syncs.yaml`` (create it with
``kizen-sync demo --workdir .demo``); backfills run one partition per run unless
``KIZEN_SYNC_BACKFILL_POLICY=single_run``.
"""

from pathlib import Path

import dagster as dg

__all__ = ["defs"]


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of ``dagster_project/defs/`` (one component per sync file)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
