"""What every part of the bench shares: sizes, the run's PostgreSQL database, a scratch dir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.sizes import Sizes

__all__ = ["Context"]


@dataclass
class Context:
    """Shared by the sections of one ``python -m bench`` run.

    Attributes:
        sizes: full or quick sizes.
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
