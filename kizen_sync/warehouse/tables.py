"""SQLAlchemy Core handles on kizen-sync's own tables and views in the warehouse.

The tables are *created* from the reviewed DDL files in ``sql/<dialect>/`` (see
:mod:`.migrations`); these definitions only let the rest of the code build statements against
them without pasting names into SQL. They must match the DDL column for column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, Table, Text

from kizen_sync.models import RunCounts

__all__ = ["RUN_COUNTS", "StateTables", "state_tables"]

#: The count columns of the runs table: :class:`~kizen_sync.models.RunCounts`, then the
#: run-wide figures.
RUN_COUNTS = (*RunCounts.names(), "planned", "requests")


@dataclass(frozen=True)
class StateTables:
    """The tables and views the DDL files create.

    - ``state``: per sync and source key, the Kizen id, fingerprint and values last confirmed;
    - ``audit``: one row per attempt (what was planned, sent, and what Kizen said);
    - ``runs``: one row per run with its status and counts;
    - ``parked``: failures not worth re-sending until their row or the mapping changes
      (:mod:`.failures`);
    - ``version``: the DDL files applied;
    - ``leases``: per sync, the run that holds it (:mod:`.lease`);
    - ``open_failures`` / ``run_summary``: the monitoring views.
    """

    state: Table
    audit: Table
    runs: Table
    parked: Table
    version: Table
    leases: Table
    open_failures: Table
    run_summary: Table


def state_tables(schema: str | None, prefix: str) -> StateTables:
    """The table handles under ``schema`` (None: the connection's default) and ``prefix``."""
    md = MetaData(schema=schema)
    ts = DateTime(timezone=True)

    def table(name: str, *columns: Column[Any]) -> Table:
        return Table(f"{prefix}{name}", md, *columns)

    def texts(*names: str) -> list[Column[Any]]:
        return [Column(name, Text) for name in names]

    run_columns: list[Column[Any]] = [
        Column("run_id", Text, primary_key=True),
        *texts("sync_name", "partition_key", "status"),
        Column("started_at", ts),
        Column("finished_at", ts),
        *(Column(name, Integer) for name in RUN_COUNTS),
        Column("message", Text),
    ]
    return StateTables(
        state=table(
            "sync_state",
            Column("sync_name", Text, primary_key=True),
            Column("source_key", Text, primary_key=True),
            *texts("kizen_id", "fingerprint", "values_json"),
            Column("archived", Boolean),
            Column("run_id", Text),
            Column("updated_at", ts),
            Column("identity", Text),
        ),
        audit=table(
            "audit",
            Column("id", Integer, primary_key=True),
            *texts("run_id", "sync_name", "partition_key", "source_key", "kizen_id"),
            *texts("operation", "outcome"),
            Column("http_status", Integer),
            *texts("error_class", "error_message", "field_errors", "changed_fields"),
            *texts("values_hash"),
            Column("attempt", Integer),
            Column("started_at", ts),
            Column("finished_at", ts),
        ),
        runs=table("runs", *run_columns),
        parked=table(
            "parked",
            Column("sync_name", Text, primary_key=True),
            Column("source_key", Text, primary_key=True),
            *texts("fingerprint", "error_class", "run_id"),
            Column("parked_at", ts),
        ),
        version=table(
            "schema_version",
            Column("version", Integer, primary_key=True),
            Column("name", Text),
            Column("applied_at", ts),
        ),
        leases=table(
            "leases",
            Column("sync_name", Text, primary_key=True),
            *texts("run_id", "owner", "host_id"),
            Column("pid", BigInteger),
            Column("pid_start", BigInteger),
            Column("acquired_at", ts),
            Column("heartbeat_at", ts),
            Column("expires_at", ts),
            Column("version", BigInteger),
        ),
        open_failures=table(
            "open_failures",
            *texts("sync_name", "source_key", "kizen_id", "operation", "error_class"),
            *texts("error_message", "field_errors"),
            Column("http_status", Integer),
            Column("first_failed_at", ts),
            Column("last_failed_at", ts),
            Column("failed_runs", Integer),
            Column("age", Float),
        ),
        run_summary=table(
            "run_summary",
            *(Column(c.name, c.type) for c in run_columns),
            *(
                Column(name, Integer)
                for name in ("audit_attempts", "audit_records", "audit_succeeded", "audit_failed")
            ),
        ),
    )
