"""What every part of the bench shares: sizes, the run's PostgreSQL database, a scratch dir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.proc import run_worker
from bench.sizes import Sizes

__all__ = ["Context"]


@dataclass
class Context:
    """Shared by the sections of one ``python -m bench`` run.

    Attributes:
        sizes: full, quick or smoke sizes.
        pg_url: URL of this run's own PostgreSQL database (dropped at the end).
        tmp: scratch directory (SQLite files, emulator state, dlt pipelines), removed at the end.
        say: progress line printer.
    """

    sizes: Sizes
    pg_url: str
    tmp: Path
    say: Callable[[str], None]

    def sqlite_url(self, name: str) -> str:
        """A SQLite database file in the scratch dir."""
        return f"sqlite:///{self.tmp / name}.db"

    def worker(self, task: str, params: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """Run one measurement: in a fresh worker process unless the sizes say otherwise."""
        return run_worker(task, params, timeout_s=timeout_s, isolated=self.sizes.isolated)

    def duckdb_url(self, name: str) -> str:
        """A DuckDB database file in the scratch dir."""
        return f"duckdb:///{self.tmp / name}.duckdb"
