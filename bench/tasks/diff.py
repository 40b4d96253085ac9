"""Change detection and the plain scans it is compared with, each in a fresh process.

``diff`` is what an incremental run pays before the first request:
``ChangeDetector.archive_counts`` (key-only SQL counts, used by the mass-archive guard) plus
iterating ``iter_changes`` to the end (the changed rows, streamed through a server-side
cursor), exactly the two warehouse passes of ``SyncRunner.run``. Both include the
primary-key uniqueness check the detector runs before every diff, because a real run pays it
too.

``scan`` reads the same columns without any diff, two ways:

* ``stream``: ``SELECT pk, mapped columns FROM source`` streamed to the client in chunks of
  1,000 through a server-side cursor. This is the least any connector that diffs (or just
  sends) in Python must do every run, so it is the baseline of the "within 2x" target.
* ``aggregate``: ``count(*)`` and ``sum(length(CAST(col AS TEXT)))`` of every mapped column,
  computed in the database: reading and rendering every value, with no transfer. Stricter,
  reported alongside.
"""

from __future__ import annotations

import time
from typing import Any

from bench.fixtures import COLUMNS
from bench.memory import rss_mib, vm_hwm_mib

__all__ = ["diff", "scan"]


def diff(params: dict[str, Any]) -> dict[str, Any]:
    """Guard counts + full change stream of ``params['sync']`` against its state."""
    from kizen_sync.config import SyncConfig
    from kizen_sync.warehouse import ChangeDetector, Warehouse

    sync = SyncConfig.model_validate(params["sync"])
    warehouse = Warehouse(params["url"])
    try:
        detector = ChangeDetector(warehouse, sync)
        detector.store.ensure_schema()
        rss_before = rss_mib()
        t0 = time.perf_counter()
        guard = detector.archive_counts()
        t1 = time.perf_counter()
        kinds: dict[str, int] = {}
        for chunk in detector.iter_changes(chunk_size=int(params.get("chunk_size", 1000))):
            for change in chunk:
                kinds[change.kind.value] = kinds.get(change.kind.value, 0) + 1
        t2 = time.perf_counter()
    finally:
        warehouse.dispose()
    return {
        "counts": {
            "new": kinds.get("new", 0),
            "changed": kinds.get("changed", 0),
            "deleted": guard.deleted,
            "synced": guard.synced,
        },
        "streamed": kinds,
        "counts_s": t1 - t0,
        "stream_s": t2 - t1,
        "diff_s": t2 - t0,
        "rss_before_mib": rss_before,
        "peak_rss_mib": vm_hwm_mib(),
    }


def scan(params: dict[str, Any]) -> dict[str, Any]:
    """A plain read of ``id`` + the mapped columns of ``params['table']`` (see module doc)."""
    from sqlalchemy import create_engine, text

    table, mode = params["table"], params["mode"]
    engine = create_engine(params["url"])
    cols = list(COLUMNS)
    rss_before = rss_mib()
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            if mode == "stream":
                # stream_results is requested, yet with psycopg 3.3 + SQLAlchemy 2.1.9 the
                # result is still buffered client-side (peak RSS grows with the table: 921 MiB
                # at 1M rows), so this is a transfer-to-client baseline, not a low-memory one.
                streaming = conn.execution_options(stream_results=True, yield_per=1000)
                result = streaming.execute(text(f"SELECT id, {', '.join(cols)} FROM {table}"))
                rows = sum(len(part) for part in result.partitions())
            elif mode == "aggregate":
                aggregates = ", ".join(f"sum(length(CAST({c} AS TEXT)))" for c in cols)
                rows = int(
                    conn.exec_driver_sql(f"SELECT count(*), {aggregates} FROM {table}").first()[0]
                )
            else:
                raise ValueError(f"unknown scan mode {mode!r}")
            elapsed = time.perf_counter() - t0
    finally:
        engine.dispose()
    return {
        "rows": rows,
        "scan_s": elapsed,
        "rss_before_mib": rss_before,
        "peak_rss_mib": vm_hwm_mib(),
    }
