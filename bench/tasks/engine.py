"""kizen-sync measured through its own entry points: a SyncRunner run, or the client alone.

``runner_run`` is exactly what the CLI and Dagster call (``SyncRunner.run``), so its figures
include the SQL diff, planning, the schema read, pacing, retries and the state/audit flush.
The apply window (first to last applied record, from the runner's progress callback) gives
the steady rate without the fixed start-up work; the whole run's wall time is reported too.

``client_patch`` is the old ``bench/client_throughput.py``: PATCHes straight through
:class:`~kizen_sync.client.KizenClient` with the same payload, for comparison.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.fixtures import COLUMNS, bench_uuid
from bench.memory import rss_mib, vm_hwm_mib
from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.emulator.emulator import DEMO_API_KEY, DEMO_BUSINESS_ID, DEMO_USER_ID

__all__ = ["client_patch", "runner_run", "settings"]


def settings(params: dict[str, Any]) -> ClientSettings:
    """Client settings for the emulator at ``params['base_url']``.

    ``rate`` is the server's limit R handed to the client as ``requests_per_second`` (the
    client paces at its default 95 % headroom); ``in_flight`` its concurrency cap.
    """
    return ClientSettings(
        base_url=params["base_url"],
        api_key=DEMO_API_KEY,
        user_id=DEMO_USER_ID,
        business_id=DEMO_BUSINESS_ID,
        requests_per_second=params.get("rate"),
        max_in_flight=int(params.get("in_flight", 16)),
        trust_env=False,
    )


def runner_run(params: dict[str, Any]) -> dict[str, Any]:
    """One ``SyncRunner.run`` of ``params['sync']`` from ``params['project']``."""
    from kizen_sync.config import parse_config
    from kizen_sync.engine import SyncRunner
    from kizen_sync.models import RunOptions

    config = parse_config(params["project"])
    marks: list[float] = []

    def progress(_sync: str, done: int, _total: int) -> None:
        now = time.perf_counter()
        if done == 1 or not marks:
            marks[:] = [now, now]
        else:
            marks[1] = now

    rss_before = rss_mib()
    with SyncRunner(config, client_settings=settings(params), progress=progress) as runner:
        cpu0, t0 = time.process_time(), time.perf_counter()
        report = runner.run(params["sync"], RunOptions(**params.get("options", {})))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    counts = report.counts.as_dict()
    applied = counts["created"] + counts["updated"] + counts["archived"] + counts["noop"]
    window = marks[1] - marks[0] if len(marks) == 2 else 0.0
    return {
        "status": report.status,
        "message": report.message,
        "counts": counts,
        "applied": applied,
        "planned": report.planned,
        "requests": report.requests,
        "wall_s": wall,
        "cpu_s": cpu,
        "apply_window_s": window,
        # n results over the window between the 1st and the n-th: n - 1 intervals
        "apply_rate": (applied - 1) / window if window > 0 and applied > 1 else None,
        "rss_before_mib": rss_before,
        "peak_rss_mib": vm_hwm_mib(),
        "failures": report.failures[:3],
    }


def _entries(i: int) -> list[dict[str, Any]]:
    """The same eight fields the engine sends for row ``i`` (wire forms)."""
    values: dict[str, Any] = {
        "name": f"Account {i} (client)",
        "billing_email": f"acct{i}@example.com",
        "employees": i % 5000,
        "health_score": (i % 1000) / 10,
        "renewal_date": "2024-06-01",
        "last_contacted": "2024-06-01T12:00:00+00:00",
        "active": i % 2 == 0,
        "description": f"Row {i}",
    }
    return [{"name": COLUMNS[c][2], "value": v} for c, v in values.items()]


def client_patch(params: dict[str, Any]) -> dict[str, Any]:
    """PATCH records 1..rows once each through KizenClient; rate, 429s and CPU per request."""
    rows = int(params["rows"])
    in_flight = int(params.get("in_flight", 16))

    async def main() -> dict[str, Any]:
        async with KizenClient(settings(params)) as client:
            todo = iter(range(1, rows + 1))

            async def worker() -> None:
                for i in todo:
                    await client.patch_record("accounts", bench_uuid(i), _entries(i))

            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            return {
                "applied": rows,
                "wall_s": wall,
                "cpu_s": cpu,
                "apply_rate": rows / wall,
                **client.stats.as_dict(),
            }

    return asyncio.run(main())
