"""The script people write by hand: read every row, PATCH each one in turn.

One synchronous ``httpx.Client``, one loop, one PATCH per row with all mapped fields, every
run, whether the row changed or not. No state, so an incremental run is a full run.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import create_engine

from bench.fixtures import COLUMNS
from bench.memory import vm_hwm_mib
from bench.peers.wire import HEADERS, patch_path, record_body

__all__ = ["run"]


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Sync ``params['table']`` to the emulator at ``params['base_url']`` the naive way."""
    engine = create_engine(params["url"])
    statuses: Counter[int] = Counter()
    cpu0, t0 = time.process_time(), time.perf_counter()
    with (
        httpx.Client(
            base_url=params["base_url"], headers=HEADERS, timeout=30.0, trust_env=False
        ) as http,
        engine.connect() as conn,
    ):
        cols = ", ".join(["kizen_id", *COLUMNS])
        rows = conn.exec_driver_sql(f"SELECT {cols} FROM {params['table']} ORDER BY id")
        for row in rows.mappings().all():
            response = http.patch(patch_path(row), json=record_body(dict(row)))
            statuses[response.status_code] += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    engine.dispose()
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": vm_hwm_mib(),
    }
