"""One measurement in a fresh process: ``python -m bench.worker TASK`` (JSON params on stdin).

The parent (:func:`bench.proc.run_worker`) starts one worker per measurement, so CPU time
(``time.process_time``) and peak memory (``VmHWM`` from ``/proc/self/status``) cover exactly
that measurement and the modules it needs. The result is printed as JSON on the last line.
Tasks are imported lazily: the diff worker never loads dlt, the dlt worker never loads the
engine, so each one's memory figure is its own.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["TASKS", "main", "resolve"]

#: task name -> "module:function"; each function takes the params dict and returns a dict.
TASKS: dict[str, str] = {
    "runner_run": "bench.tasks.engine:runner_run",
    "client_patch": "bench.tasks.engine:client_patch",
    "diff": "bench.tasks.diff:diff",
    "scan": "bench.tasks.diff:scan",
    "naive": "bench.peers.naive:run",
    "dlt": "bench.peers.dlt_pipeline:run",
}


def resolve(task: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function behind ``task`` (imported on first use)."""
    target = TASKS.get(task)
    if target is None:
        raise SystemExit(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    """Run the task named on the command line with the JSON params read from stdin."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.worker TASK  (JSON params on stdin)")
    params = json.loads(sys.stdin.read() or "{}")
    result = resolve(args[0])(params)
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
