"""The sync engine: pure planner, async executor, and the runner that ties them together.

``SyncRunner`` is what the CLI and Dagster call. The exports are resolved lazily so that
importing the pure :mod:`kizen_sync.engine.planner` does not load the HTTP and SQL stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kizen_sync.engine.executor import ApplySummary, Executor
    from kizen_sync.engine.guards import GuardReport
    from kizen_sync.engine.runner import SyncRunner, client_settings_from_config

__all__ = ["ApplySummary", "Executor", "GuardReport", "SyncRunner", "client_settings_from_config"]

_EXPORTS = {
    "ApplySummary": "kizen_sync.engine.executor",
    "Executor": "kizen_sync.engine.executor",
    "GuardReport": "kizen_sync.engine.guards",
    "SyncRunner": "kizen_sync.engine.runner",
    "client_settings_from_config": "kizen_sync.engine.runner",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
