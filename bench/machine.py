"""Facts about the machine and software a run was measured on, stored with its figures."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

__all__ = ["load_average", "machine_facts"]

PACKAGES = (
    "kizen-sync",
    "httpx",
    "httpcore",
    "tenacity",
    "sqlalchemy",
    "psycopg",
    "pydantic",
    "starlette",
    "uvicorn",
    "dlt",
    "pandas",
    "rich",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _postgres(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    except Exception as exc:  # the figure is informative; a missing server is reported
        return f"unavailable ({type(exc).__name__})"
    finally:
        engine.dispose()


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (the machine may be shared with other work)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts(pg_url: str) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, package versions, database versions, commit."""
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "postgresql": _postgres(pg_url),
        "sqlite": sqlite3.sqlite_version,
        "git_commit": _commit(),
        "load_average_start": load_average(),
    }
