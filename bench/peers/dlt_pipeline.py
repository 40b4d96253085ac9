"""A dlt pipeline with a ``@dlt.destination`` sink: the open-source way to push rows to an API.

The source is a dlt resource reading the warehouse with ``dlt.sources.incremental("updated_at")``
(the filter pushed into SQL, as dlt's docs show), so a second run only reads rows edited since
the last one. The sink PATCHes each item with all mapped fields through one ``httpx.Client``.
dlt's defaults are kept (batch size, loader workers), because that is what people run. The
pipeline's state lives in ``params['pipelines_dir']``, so the incremental run in a new
process resumes from the first run's cursor.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.fixtures import COLUMNS
from bench.memory import vm_hwm_mib
from bench.peers.wire import HEADERS, patch_path, record_body

__all__ = ["run"]


def run(params: dict[str, Any]) -> dict[str, Any]:
    """One ``pipeline.run`` of the incremental resource into the PATCHing sink."""
    import dlt
    from dlt.common.schema import TTableSchema
    from dlt.common.typing import TDataItems

    engine = create_engine(params["url"])
    statuses: Counter[int] = Counter()
    http = httpx.Client(base_url=params["base_url"], headers=HEADERS, timeout=30.0, trust_env=False)
    table = params["table"]
    cols = ", ".join(["id", "kizen_id", *COLUMNS, "updated_at"])

    @dlt.destination(name="kizen")
    def kizen(items: TDataItems, schema: TTableSchema) -> None:
        for item in items:
            response = http.patch(patch_path(item), json=record_body(item))
            statuses[response.status_code] += 1

    @dlt.resource(name="accounts", primary_key="id", write_disposition="append")
    def accounts(
        # dlt's documented idiom: the cursor is the argument's default value
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updated_at", initial_value=datetime(1970, 1, 1, tzinfo=UTC)
        ),
    ) -> Any:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                text(f"SELECT {cols} FROM {table} WHERE updated_at >= :since ORDER BY updated_at"),
                {"since": updated_at.last_value},
            )
            for part in result.partitions():
                yield [dict(row._mapping) for row in part]

    pipeline = dlt.pipeline(
        pipeline_name=params["pipeline_name"],
        pipelines_dir=params["pipelines_dir"],
        destination=kizen,
        dataset_name="kizen_bench",
    )
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        pipeline.run(accounts())
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        http.close()
        engine.dispose()
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": vm_hwm_mib(),
        "dlt": dlt.__version__,
    }
