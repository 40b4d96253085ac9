"""The code location: everything under ``dagster_project/defs/``, loaded the ``dg`` way.

``workspace.yaml`` (``dagster dev -w workspace.yaml``) and ``dg`` (``dg dev``, ``dg check
defs``, ``dg list defs``; ``[tool.dg]`` in ``pyproject.toml``) both load this module. The
folder holds one :class:`~dagster_project.component.KizenSyncComponent` reading
``$KIZEN_SYNC_CONFIG``, or the demo's ``.demo/syncs.yaml`` (create it with
``kizen-sync demo --workdir .demo``); backfills run one partition per run unless
``KIZEN_SYNC_BACKFILL_POLICY=single_run``.

The same module is the code location of a deployment installed with ``pip install
"kizen-sync[celery]"`` (``dagster api grpc -m dagster_project.definitions``), where the
package sits in ``site-packages`` with no ``pyproject.toml`` above it.
"""

import importlib
from pathlib import Path

import dagster as dg

__all__ = ["defs"]

_PACKAGE = Path(__file__).parent


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of ``dagster_project/defs/`` (one component per sync file).

    In a checkout the folder is the ``dg`` project of the repository's ``pyproject.toml``.
    An installed package has no ``pyproject.toml`` (a wheel ships none), and
    ``load_from_defs_folder`` would stop every code server, worker and daemon of a deployment
    with "Could not find config file"; so there the same folder is loaded as the defs module
    it is, rooted at the package's parent. Only the package's own parent is looked at: a
    virtualenv inside another project must not pick up that project's configuration.
    """
    if (_PACKAGE.parent / "pyproject.toml").is_file():
        return dg.load_from_defs_folder(path_within_project=_PACKAGE)
    defs_module = importlib.import_module(f"{__package__}.defs")
    return dg.ComponentTree.from_module(
        defs_module=defs_module, project_root=_PACKAGE.parent
    ).build_defs()
