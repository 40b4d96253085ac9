"""kizen-sync: keep Kizen CRM records in step with a SQL warehouse.

The public API, in the order a sync uses it::

    from kizen_sync import SyncRunner, RunOptions, load_config

    runner = SyncRunner(load_config("syncs.yaml"))     # API key from $KIZEN_API_KEY
    report = runner.plan("contacts")                   # what would be sent; changes nothing
    report = runner.run("contacts", RunOptions())      # diff, guard, apply, state, audit
    runner.open_failures("contacts")                   # records whose last attempt failed

Lower layers are importable on their own: :mod:`kizen_sync.client` (the Kizen API client),
:mod:`kizen_sync.emulator` (a local Kizen server), :mod:`kizen_sync.mapping` and
:mod:`kizen_sync.engine.planner` (pure), :mod:`kizen_sync.warehouse`
(warehouse side). Exports resolve lazily, so ``import kizen_sync`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kizen_sync.client import ClientSettings, KizenClient
    from kizen_sync.config import ProjectConfig, SyncConfig, load_config
    from kizen_sync.engine.guards import GuardReport
    from kizen_sync.engine.runner import SyncRunner
    from kizen_sync.errors import (
        FatalError,
        KizenSyncError,
        RetryableError,
        SkippableError,
    )
    from kizen_sync.models import Partition, RunOptions, RunReport

__version__ = "0.1.0"

__all__ = [
    "ClientSettings",
    "FatalError",
    "GuardReport",
    "KizenClient",
    "KizenSyncError",
    "Partition",
    "ProjectConfig",
    "RetryableError",
    "RunOptions",
    "RunReport",
    "SkippableError",
    "SyncConfig",
    "SyncRunner",
    "__version__",
    "load_config",
]

_EXPORTS = {
    "ClientSettings": "kizen_sync.client",
    "KizenClient": "kizen_sync.client",
    "ProjectConfig": "kizen_sync.config",
    "SyncConfig": "kizen_sync.config",
    "load_config": "kizen_sync.config",
    "GuardReport": "kizen_sync.engine.guards",
    "SyncRunner": "kizen_sync.engine.runner",
    "FatalError": "kizen_sync.errors",
    "KizenSyncError": "kizen_sync.errors",
    "RetryableError": "kizen_sync.errors",
    "SkippableError": "kizen_sync.errors",
    "Partition": "kizen_sync.models",
    "RunOptions": "kizen_sync.models",
    "RunReport": "kizen_sync.models",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
