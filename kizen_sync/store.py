"""State, audit and run tables in the warehouse, and the one-transaction flush of outcomes.

The DDL lives in ``sql/<dialect>/NNN_*.sql`` (readable, reviewable) and is applied by
:meth:`StateStore.ensure_schema`, which records each applied file in ``{prefix}schema_version``.
Two processes may race to create the tables: PostgreSQL serialises them with an advisory lock,
SQLite with ``BEGIN IMMEDIATE``; every statement is also idempotent on its own.

``sync_state`` is written only for records Kizen confirmed, in the same transaction as their
audit rows, so a crash leaves unconfirmed records "changed" for the next run. A deleted source
row that is not archived ("forget", :attr:`~kizen_sync.models.PlannedOp.forgets_state`)
deletes its state row, so that the next diff no longer sees it. Its ``values_json`` column
holds the last synced values in clear: it lives in the warehouse next to the source data it was
derived from, under the same access control.

The audit table is meant to be shared more widely. Per attempt it holds:

- ``operation``: the planned operation (``create``, ``update``, ``archive``, ``noop``,
  ``fail``), or ``forget`` for a state row dropped without any request;
- ``changed_fields``: JSON ``{field API name: written value}`` of the fields the op wrote. The
  *names* are the contract; the values of non-sensitive fields are kept only to help debugging
  (``{"add": [...], "remove": [...]}`` for multi-valued fields, ids as sent), and the value of
  every sensitive field is replaced by ``"[redacted]"``;
- ``error_message`` and ``field_errors`` (JSON ``{field: [message, ...]}``: Kizen's messages
  per field for a 400, the mapping problems per field for a row that could not be mapped):
  problems of sensitive fields are withheld, and any text form of a sensitive value that a
  message might echo is replaced by ``"[redacted]"``;
- ``values_hash``: an HMAC-SHA256 of the record's values (:func:`kizen_sync.mapping.hash_values`,
  keyed with a secret kept outside the warehouse), never the values themselves.

"Sensitive fields" are given to :meth:`StateStore.record_results` as the API names (and field
ids) of the fields mapped with ``sensitive: true``; the runner resolves them through the
object's schema (:meth:`~kizen_sync.config.SyncConfig.sensitive_field_keys`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from kizen_sync.config import SyncConfig
from kizen_sync.errors import MappingError, StateStoreError
from kizen_sync.mapping import hash_values
from kizen_sync.models import Operation, Outcome, RecordResult, RunReport, StateRow
from kizen_sync.source import Warehouse
from kizen_sync.sqlfiles import migrations, render, split_statements, sql_dir

__all__ = ["FORGET", "RESOLVE", "StateStore", "StateTables", "decode_values", "encode_values"]

_KEYS_PER_QUERY = 5000
_MESSAGE_LIMIT = 2000
_REDACTED = "[redacted]"
_WITHHELD = "value rejected (details withheld: sensitive field)"
#: The audit ``operation`` of a "forget the state row" op (a NOOP in the plan).
FORGET = "forget"
#: Audit operation of an open failure closed without a request: the row no longer needs a
#: write (it matches what Kizen last confirmed again, or it left the source before it was
#: ever synced). See :meth:`StateStore.resolve_failures`.
RESOLVE = "resolve"
_RUN_COUNTS = (
    "created",
    "updated",
    "archived",
    "unchanged",
    "noop",
    "failed",
    "planned",
    "requests",
)
_LOCK_ID = 0x6B697A656E  # pg_advisory_xact_lock id shared by every kizen-sync process


# --- values ------------------------------------------------------------------------------------


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_tag(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {
            "$set": sorted((_tag(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        }
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _tag(v) for k, v in value.items()}
    return value


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$uuid": UUID,
    "$tuple": tuple,
    "$set": frozenset,
}


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key in _UNTAG:
            return _UNTAG[key](value)
    return obj


def encode_values(values: Mapping[str, Any]) -> str:
    """JSON text of canonical values that :func:`decode_values` turns back into equal values.

    Decimals, dates, datetimes, times, UUIDs, tuples and sets are tagged (``{"$decimal":
    "1.50"}``) so that the planner compares like with like after a round trip.
    """
    return json.dumps(_tag(dict(values)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_values(text_value: str | None) -> dict[str, Any]:
    """The values stored by :func:`encode_values` (``{}`` for NULL)."""
    if not text_value:
        return {}
    decoded = json.loads(text_value, object_hook=_untag)
    return dict(decoded) if isinstance(decoded, dict) else {}


# --- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateTables:
    """SQLAlchemy Core handles on the tables and views the DDL files create."""

    state: Table
    audit: Table
    runs: Table
    version: Table
    open_failures: Table
    run_summary: Table


def _tables(schema: str | None, prefix: str) -> StateTables:
    md = MetaData(schema=schema)
    ts = DateTime(timezone=True)

    def table(name: str, *columns: Column[Any]) -> Table:
        return Table(f"{prefix}{name}", md, *columns)

    run_columns: list[Column[Any]] = [
        Column("run_id", Text, primary_key=True),
        Column("sync_name", Text),
        Column("partition_key", Text),
        Column("status", Text),
        Column("started_at", ts),
        Column("finished_at", ts),
        *(Column(name, Integer) for name in _RUN_COUNTS),
        Column("message", Text),
    ]
    return StateTables(
        state=table(
            "sync_state",
            Column("sync_name", Text, primary_key=True),
            Column("source_key", Text, primary_key=True),
            Column("kizen_id", Text),
            Column("fingerprint", Text),
            Column("values_json", Text),
            Column("archived", Boolean),
            Column("run_id", Text),
            Column("updated_at", ts),
        ),
        audit=table(
            "audit",
            Column("id", Integer, primary_key=True),
            *(
                Column(name, Text)
                for name in ("run_id", "sync_name", "partition_key", "source_key", "kizen_id")
            ),
            Column("operation", Text),
            Column("outcome", Text),
            Column("http_status", Integer),
            *(
                Column(name, Text)
                for name in (
                    "error_class",
                    "error_message",
                    "field_errors",
                    "changed_fields",
                    "values_hash",
                )
            ),
            Column("attempt", Integer),
            Column("started_at", ts),
            Column("finished_at", ts),
        ),
        runs=table("runs", *run_columns),
        version=table(
            "schema_version",
            Column("version", Integer, primary_key=True),
            Column("name", Text),
            Column("applied_at", ts),
        ),
        open_failures=table(
            "open_failures",
            *(
                Column(name, Text)
                for name in (
                    "sync_name",
                    "source_key",
                    "kizen_id",
                    "operation",
                    "error_class",
                    "error_message",
                    "field_errors",
                )
            ),
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


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    """Aware UTC; naive datetimes are taken to be UTC already (SQLite stores them so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): (_utc(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _name(sync: str | SyncConfig) -> str:
    return sync if isinstance(sync, str) else sync.name


# --- store -------------------------------------------------------------------------------------


class StateStore:
    """The connector's bookkeeping tables in the warehouse (see the module docstring)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.tables = _tables(warehouse.state_schema, warehouse.table_prefix)
        self._ready = False

    # --- schema ------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or upgrade the tables and views; cheap when they are current.

        Raises:
            StateStoreError: the DDL failed or this dialect has no DDL files.
        """
        if self._ready:
            return
        try:
            files = migrations(self.warehouse.dialect)
        except FileNotFoundError as exc:
            raise StateStoreError(str(exc)) from None
        latest = max(f.version for f in files)
        try:
            if self._applied_version() < latest:
                with self._migration_lock() as conn:
                    self._migrate(conn, files)
        except sa_exc.DBAPIError as exc:
            raise StateStoreError(
                f"cannot create the state tables in {self.warehouse.describe()}: "
                f"{self.warehouse.safe_message(exc)}"
            ) from None
        self._ready = True

    def _applied_version(self) -> int:
        with self.warehouse.engine.connect() as conn:
            if not inspect(conn).has_table(
                self.tables.version.name, schema=self.warehouse.state_schema
            ):
                return 0
            return int(
                conn.execute(
                    select(func.coalesce(func.max(self.tables.version.c.version), 0))
                ).scalar_one()
            )

    @contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        with self.warehouse.engine.connect() as conn:
            if self.warehouse.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.warehouse.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
                if self.warehouse.state_schema:
                    quoted = conn.dialect.identifier_preparer.quote_identifier(
                        self.warehouse.state_schema
                    )
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            yield conn
            conn.commit()

    def _migrate(self, conn: Connection, files: list[Any]) -> None:
        schema, prefix = self.warehouse.state_schema, self.warehouse.table_prefix
        bootstrap = sql_dir() / self.warehouse.dialect / "schema_version.sql"
        for statement in split_statements(
            render(bootstrap.read_text(encoding="utf-8"), schema, prefix)
        ):
            conn.exec_driver_sql(statement)
        version = self.tables.version
        applied = set(conn.execute(select(version.c.version)).scalars())
        for file in files:
            if file.version in applied:
                continue
            for statement in file.statements(schema=schema, prefix=prefix):
                conn.exec_driver_sql(statement)
            conn.execute(
                insert(version).values(version=file.version, name=file.name, applied_at=_now())
            )

    # --- state -------------------------------------------------------------------------------

    def load_state(self, sync: str | SyncConfig, keys: Collection[str]) -> dict[str, StateRow]:
        """The confirmed state of each of ``keys`` that has one."""
        self.ensure_schema()
        state, out = self.tables.state, {}
        ordered = sorted(set(keys))
        with self._connect() as conn:
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                batch = ordered[start : start + _KEYS_PER_QUERY]
                stmt = select(state).where(
                    state.c.sync_name == _name(sync), state.c.source_key.in_(batch)
                )
                for row in conn.execute(stmt).mappings():
                    out[row["source_key"]] = StateRow(
                        source_key=row["source_key"],
                        kizen_id=row["kizen_id"],
                        fingerprint=row["fingerprint"],
                        values=decode_values(row["values_json"]),
                        archived=bool(row["archived"]),
                    )
        return out

    def record_results(
        self,
        run_id: str,
        sync: str | SyncConfig,
        partition_key: str | None,
        results: Iterable[RecordResult],
        *,
        sensitive_fields: Collection[str] = frozenset(),
        hash_key: bytes | None = None,
    ) -> int:
        """Write audit rows for every attempt and state for every success, in one transaction.

        A result without attempts (nothing was sent, e.g. a mapping failure) still gets one
        audit row with attempt 0; the last row of each result carries its final outcome.
        Successful archives keep their state row with ``archived`` set and no fingerprint;
        successful "forget" ops delete it (audit operation :data:`FORGET`).

        Args:
            run_id: the run these results belong to.
            sync: the sync (or its name).
            partition_key: the run's partition, if any.
            results: terminal results of applied ops.
            sensitive_fields: API names (field ids are accepted too) of the fields whose
                values must not reach the audit table. The names the planner uses, not the
                ``fields[].field`` spelling of the sync file, which may be a field id.
            hash_key: HMAC key of ``values_hash``; without one no hash is stored at all.

        Returns:
            The number of audit rows written.
        """
        self.ensure_schema()
        name, now = _name(sync), _now()
        sensitive = frozenset(sensitive_fields)
        audit_rows: list[dict[str, Any]] = []
        upserts: dict[str, dict[str, Any]] = {}
        archives: dict[str, dict[str, Any]] = {}
        forgets: set[str] = set()
        for result in results:
            audit_rows.extend(
                _audit_rows(result, run_id, name, partition_key, sensitive, hash_key, now)
            )
            if result.outcome is not Outcome.SUCCESS or result.op.op is Operation.FAIL:
                continue
            op = result.op
            # The last result of a key in the batch wins, whatever it did.
            upserts.pop(op.source_key, None)
            archives.pop(op.source_key, None)
            forgets.discard(op.source_key)
            row = {
                "sync_name": name,
                "source_key": op.source_key,
                "kizen_id": result.kizen_id or op.kizen_id,
                "run_id": run_id,
                "updated_at": now,
            }
            if op.forgets_state:
                forgets.add(op.source_key)
            elif op.op is Operation.ARCHIVE:
                archives[op.source_key] = {
                    **row,
                    "fingerprint": None,
                    "values_json": "{}",
                    "archived": True,
                }
            else:
                upserts[op.source_key] = {
                    **row,
                    "fingerprint": op.fingerprint,
                    "values_json": encode_values(op.new_values),
                    "archived": False,
                }
        state = self.tables.state
        try:
            with self.warehouse.engine.begin() as conn:
                if audit_rows:
                    conn.execute(insert(self.tables.audit), audit_rows)
                if upserts:
                    conn.execute(self._upsert_state(keep_values=False), list(upserts.values()))
                if archives:
                    conn.execute(self._upsert_state(keep_values=True), list(archives.values()))
                ordered = sorted(forgets)
                for start in range(0, len(ordered), _KEYS_PER_QUERY):
                    conn.execute(
                        delete(state).where(
                            state.c.sync_name == name,
                            state.c.source_key.in_(ordered[start : start + _KEYS_PER_QUERY]),
                        )
                    )
        except sa_exc.DBAPIError as exc:
            raise StateStoreError(
                f"cannot record results of run {run_id}: {self.warehouse.safe_message(exc)}",
                run_id=run_id,
            ) from None
        return len(audit_rows)

    def _upsert_state(self, *, keep_values: bool) -> Any:
        state = self.tables.state
        dialect = postgresql if self.warehouse.dialect == "postgresql" else sqlite
        stmt = dialect.insert(state)
        new = stmt.excluded
        changes: dict[str, Any] = {
            "kizen_id": func.coalesce(new.kizen_id, state.c.kizen_id),
            "fingerprint": new.fingerprint,
            "archived": new.archived,
            "run_id": new.run_id,
            "updated_at": new.updated_at,
        }
        if not keep_values:  # an archive keeps the last synced values for a later restore
            changes["values_json"] = new.values_json
        return stmt.on_conflict_do_update(
            index_elements=[state.c.sync_name, state.c.source_key], set_=changes
        )

    # --- runs --------------------------------------------------------------------------------

    def start_run(
        self, run_id: str, sync: str | SyncConfig, partition_key: str | None, started_at: datetime
    ) -> None:
        """Record that a run began (status ``running``); a repeated id restarts the row."""
        self._upsert_run(
            {
                "run_id": run_id,
                "sync_name": _name(sync),
                "partition_key": partition_key,
                "status": "running",
                "started_at": _utc(started_at),
                "finished_at": None,
            }
        )

    def finish_run(self, report: RunReport) -> None:
        """Record a run's final status and counts."""
        self._upsert_run(
            {
                "run_id": report.run_id,
                "sync_name": report.sync,
                "partition_key": report.partition_key,
                "status": report.status,
                "started_at": _utc(report.started_at),
                "finished_at": _utc(report.finished_at),
                **report.counts.as_dict(),
                "planned": report.planned,
                "requests": report.requests,
                "message": report.message[:_MESSAGE_LIMIT],
            }
        )

    def _upsert_run(self, values: dict[str, Any]) -> None:
        self.ensure_schema()
        runs = self.tables.runs
        dialect = postgresql if self.warehouse.dialect == "postgresql" else sqlite
        row: dict[str, Any] = dict.fromkeys(_RUN_COUNTS, 0) | {"message": None} | values
        stmt = dialect.insert(runs).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[runs.c.run_id], set_={k: stmt.excluded[k] for k in row if k != "run_id"}
        )
        with self._connect() as conn:
            conn.execute(stmt)
            conn.commit()

    # --- reading -----------------------------------------------------------------------------

    def open_failures(
        self, sync: str | SyncConfig | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Records whose latest terminal attempt failed, most recent failure first."""
        view = self.tables.open_failures
        stmt = select(view).order_by(view.c.last_failed_at.desc(), view.c.source_key)
        if sync is not None:
            stmt = stmt.where(view.c.sync_name == _name(sync))
        return self._rows(stmt.limit(limit) if limit is not None else stmt)

    def resolve_failures(self, run_id: str, sync: str | SyncConfig, keys: Iterable[str]) -> int:
        """Close the open failures of ``keys`` with one ``resolve`` success row each.

        The runner calls this for open failures that a complete run did not meet in the
        change stream: the row was fixed by reverting it to what Kizen already holds, or it
        was deleted before it was ever created. Nothing is left to send, so without this the
        failure would stay open (and fail the "failures left open" check) forever.

        Returns:
            The number of failures closed.
        """
        name, now = _name(sync), _now()
        ordered = sorted(set(keys))
        if not ordered:
            return 0
        state = self.tables.state
        rows: list[dict[str, Any]] = []
        with self.warehouse.engine.begin() as conn:
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                batch = ordered[start : start + _KEYS_PER_QUERY]
                ids = dict(
                    conn.execute(
                        select(state.c.source_key, state.c.kizen_id).where(
                            state.c.sync_name == name, state.c.source_key.in_(batch)
                        )
                    ).all()
                )
                rows.extend(
                    {
                        "run_id": run_id,
                        "sync_name": name,
                        "partition_key": None,
                        "source_key": key,
                        "kizen_id": ids.get(key),
                        "operation": RESOLVE,
                        "outcome": Outcome.SUCCESS.value,
                        "changed_fields": "{}",
                        "attempt": 0,
                        "started_at": now,
                        "finished_at": now,
                    }
                    for key in batch
                )
            conn.execute(insert(self.tables.audit), rows)
        return len(rows)

    def failed_keys(self, sync: str | SyncConfig) -> set[str]:
        """Source keys with an open failure (what ``kizen-sync retry`` re-sends)."""
        self.ensure_schema()
        view = self.tables.open_failures
        with self._connect() as conn:
            return set(
                conn.execute(
                    select(view.c.source_key).where(view.c.sync_name == _name(sync))
                ).scalars()
            )

    def run_summaries(
        self, sync: str | SyncConfig | None = None, limit: int | None = 20
    ) -> list[dict[str, Any]]:
        """Recent runs with their audit counts, newest first."""
        view = self.tables.run_summary
        stmt = select(view).order_by(view.c.started_at.desc(), view.c.run_id)
        if sync is not None:
            stmt = stmt.where(view.c.sync_name == _name(sync))
        return self._rows(stmt.limit(limit) if limit is not None else stmt)

    def audit_rows(
        self, run_id: str | None = None, sync: str | SyncConfig | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows in the order they were written (for tests and the CLI)."""
        audit = self.tables.audit
        stmt = select(audit).order_by(audit.c.id)
        if run_id is not None:
            stmt = stmt.where(audit.c.run_id == run_id)
        if sync is not None:
            stmt = stmt.where(audit.c.sync_name == _name(sync))
        return self._rows(stmt)

    def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        self.ensure_schema()
        with self._connect() as conn:
            return [_plain(row) for row in conn.execute(stmt).mappings()]

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.warehouse.engine.connect() as conn:
                yield conn
        except sa_exc.DBAPIError as exc:
            raise StateStoreError(
                f"state tables in {self.warehouse.describe()}: {self.warehouse.safe_message(exc)}"
            ) from None


# --- audit rows --------------------------------------------------------------------------------


def _audit_rows(
    result: RecordResult,
    run_id: str,
    sync_name: str,
    partition_key: str | None,
    sensitive: frozenset[str],
    hash_key: bytes | None,
    now: datetime,
) -> list[dict[str, Any]]:
    op = result.op
    secrets = _secret_texts(result, sensitive)
    common = {
        "run_id": run_id,
        "sync_name": sync_name,
        "partition_key": partition_key,
        "source_key": op.source_key,
        "kizen_id": result.kizen_id or op.kizen_id,
        "operation": FORGET if op.forgets_state else op.op.value,
        "changed_fields": json.dumps(
            _changed_fields(result, sensitive), sort_keys=True, default=str
        ),
        "values_hash": hash_values(op.new_values, hash_key) if hash_key is not None else None,
    }
    if not result.attempts:
        error_class, message, field_errors = _describe_error(op.error, sensitive)
        return [
            {
                **common,
                "outcome": result.outcome.value,
                "http_status": None,
                "error_class": error_class,
                "error_message": _scrub(message, secrets),
                "field_errors": _field_errors(field_errors, secrets),
                "attempt": 0,
                "started_at": now,
                "finished_at": now,
            }
        ]
    rows = []
    last = len(result.attempts) - 1
    for i, attempt in enumerate(result.attempts):
        rows.append(
            {
                **common,
                "outcome": (result.outcome if i == last else attempt.outcome).value,
                "http_status": attempt.http_status,
                "error_class": attempt.error_class,
                "error_message": _scrub(attempt.error_message, secrets),
                "field_errors": _field_errors(attempt.field_errors, secrets),
                "attempt": attempt.attempt,
                "started_at": _utc(attempt.started_at),
                "finished_at": _utc(attempt.finished_at),
            }
        )
    return rows


def _changed_fields(result: RecordResult, sensitive: frozenset[str]) -> dict[str, Any]:
    """``{field API name: written value}`` for the audit's ``changed_fields`` column.

    The keys (which fields were written) are the column's contract; the values are kept for
    debugging only, and a sensitive field shows only that it was written (``"[redacted]"``).
    """
    out: dict[str, Any] = {}
    for change in result.op.changes:
        if change.field in sensitive:
            out[change.field] = _REDACTED
        elif change.add or change.remove:
            out[change.field] = {"add": _tag(list(change.add)), "remove": _tag(list(change.remove))}
        else:
            out[change.field] = _tag(change.after)
    return out


def _secret_texts(result: RecordResult, sensitive: frozenset[str]) -> list[str]:
    """Text forms of sensitive values, to scrub from messages that may echo them.

    Canonical values (state, changes, mirror sets) and the wire values of the request
    entries that address a sensitive field by name or by id are all collected, since Kizen
    echoes what it was sent, which is not always the canonical spelling.
    """
    op = result.op
    found: list[Any] = [v for k, v in op.new_values.items() if k in sensitive]
    for change in op.changes:
        if change.field in sensitive:
            found += [change.before, change.after, *change.add, *change.remove]
    found += [v for k, v in op.mirror.items() if k in sensitive]
    for entry in op.entries:
        if entry.get("name") in sensitive or entry.get("id") in sensitive:
            found += [entry.get(k) for k in ("value", "add_values", "remove_values")]
    flat: list[str] = []
    for value in found:
        items = value if isinstance(value, list | tuple | set | frozenset) else [value]
        for item in items:
            if isinstance(item, dict):  # {"id": ...} of an option, member or relation
                item = item.get("id")
            text_value = "" if item is None else str(item)
            if len(text_value) >= 2:
                flat.append(text_value)
    return sorted(set(flat), key=len, reverse=True)


def _scrub(message: str | None, secrets: list[str]) -> str | None:
    """``message`` without any of ``secrets``, cut to the column's limit.

    Case-insensitive, because Kizen may lower-case an e-mail address it echoes.
    """
    if message is None:
        return None
    for secret in secrets:
        message = re.sub(re.escape(secret), _REDACTED, message, flags=re.IGNORECASE)
    return message[:_MESSAGE_LIMIT]


def _field_errors(errors: Mapping[str, list[str]] | None, secrets: list[str]) -> str | None:
    if not errors:
        return None
    return json.dumps(
        {k: [_scrub(m, secrets) for m in v] for k, v in errors.items()}, sort_keys=True
    )


def _describe_error(
    error: Exception | None, sensitive: frozenset[str]
) -> tuple[str | None, str | None, dict[str, list[str]] | None]:
    """Audit columns (class, message, per-field messages) of an op the planner rejected.

    A mapping error is described problem by problem, each under its field, and the problem
    of a sensitive field is withheld here too: the planner already withholds it, but the
    audit must not depend on every producer of a :class:`MappingError` doing so.
    """
    if error is None:
        return None, None, None
    error_class = getattr(error, "error_class", type(error).__name__)
    if isinstance(error, MappingError):
        parts: list[str] = []
        by_field: dict[str, list[str]] = {}
        for single in error.each():
            problem = _WITHHELD if single.field in sensitive else single.problem
            parts.append(f"column {single.column!r} -> field {single.field!r}: {problem}")
            by_field.setdefault(single.field, []).append(problem)
        return error_class, "; ".join(parts), by_field
    return error_class, str(error) or error_class, None
