"""Per-record state, per-attempt audit and per-run rows, in the warehouse.

``sync_state`` is written only for records Kizen confirmed, in the same transaction as their
audit rows, so a crash leaves unconfirmed records "changed" for the next run. A deleted source
row that is not archived ("forget", :attr:`~kizen_sync.models.PlannedOp.forgets_state`)
deletes its state row, so that the next diff no longer sees it. Its ``values_json`` column
holds the last synced values in clear (:mod:`.codec`): it lives in the warehouse next to the
source data it was derived from, under the same access control. What the audit rows hold,
and what they never hold, is :mod:`.audit`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy import exc as sa_exc

from kizen_sync.config import SyncConfig
from kizen_sync.errors import StateStoreError
from kizen_sync.identity import identity_key
from kizen_sync.models import Operation, Outcome, RecordResult, RunReport, StateRow
from kizen_sync.warehouse.audit import MESSAGE_LIMIT, RESOLVE, audit_rows, rekey_row, utc
from kizen_sync.warehouse.codec import encode_values
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.failures import Failures, parking_changes
from kizen_sync.warehouse.integrity import state_row
from kizen_sync.warehouse.migrations import Migrator
from kizen_sync.warehouse.tables import RUN_COUNTS, state_tables

__all__ = ["StateStore"]

_KEYS_PER_QUERY = 5000


def _now() -> datetime:
    return datetime.now(UTC)


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): (utc(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _by_key(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[key] for key in sorted(rows)]


def _name(sync: str | SyncConfig) -> str:
    return sync if isinstance(sync, str) else sync.name


class StateStore:
    """The connector's bookkeeping tables in one warehouse (see the module docstring).

    Args:
        warehouse: where the tables live (``state_schema`` and ``table_prefix`` included), or
            the source warehouse whose ``state`` database holds them.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse.state_warehouse
        self.tables = state_tables(self.warehouse.state_schema, self.warehouse.table_prefix)
        self._migrator = Migrator(self.warehouse, self.tables)
        #: Parked failures and the failure listing (:mod:`.failures`).
        self.failures = Failures(self.warehouse, self.tables)

    # --- schema ------------------------------------------------------------------------------

    def ensure_schema(self, *, verify: bool = False) -> None:
        """Create or upgrade the tables and views; cheap when they are current.

        ``verify`` also checks that no table was dropped since, and creates it again.

        Raises:
            StateStoreError: the DDL failed or this dialect has no DDL files.
        """
        self._migrator.ensure(verify=verify)

    def require_tables(self) -> None:
        """Stop a command that writes nothing when one of kizen-sync's tables was dropped.

        Raises:
            StateStoreError: naming the table, what the next run does about it and what
                that means for the records.
        """
        self._migrator.ensure()
        message = self._migrator.missing_message()
        if message:
            raise StateStoreError(message)

    # --- state -------------------------------------------------------------------------------

    def load_state(self, sync: str | SyncConfig, keys: Collection[str]) -> dict[str, StateRow]:
        """The confirmed state of each of ``keys`` that has one."""
        self.ensure_schema()
        out: dict[str, StateRow] = {}
        ordered = sorted(set(keys))
        with self._connect() as conn:
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                batch = ordered[start : start + _KEYS_PER_QUERY]
                for row in conn.execute(self.load_state_statement(sync, batch)).mappings():
                    out[row["source_key"]] = state_row(row, self.tables, sync)
        return out

    def load_state_statement(self, sync: str | SyncConfig, keys: list[str]) -> Any:
        """SELECT the state rows of ``keys``."""
        state = self.tables.state
        return select(state).where(state.c.sync_name == _name(sync), state.c.source_key.in_(keys))

    def record_results(
        self,
        run_id: str,
        sync: str | SyncConfig,
        partition_key: str | None,
        results: Iterable[RecordResult],
        *,
        sensitive_fields: Collection[str] = frozenset(),
        hash_key: bytes | None = None,
        fence: Callable[[Connection], None] | None = None,
    ) -> int:
        """Write audit rows for every attempt and state for every success, in one transaction.

        A result without attempts (nothing was sent, e.g. a mapping failure) still gets one
        audit row with attempt 0; the last row of each result carries its final outcome.
        Successful archives keep their state row with ``archived`` set and no fingerprint;
        successful "forget" ops delete it (audit operation
        :data:`~kizen_sync.warehouse.audit.FORGET`).

        Args:
            run_id: the run these results belong to.
            sync: the sync (or its name).
            partition_key: the run's partition, if any.
            results: terminal results of applied ops.
            sensitive_fields: API names (field ids are accepted too) of the fields whose
                values must not reach the audit table. The names the planner uses, not the
                ``fields[].field`` spelling of the sync file, which may be a field id.
            hash_key: HMAC key of ``values_hash``; without one no hash is stored at all.
            fence: called first inside the transaction; raising rolls it back (the run's
                lease check: the state of a run that lost its lease is never written).

        Returns:
            The number of audit rows written.
        """
        self.ensure_schema()
        results = list(results)
        name, now = _name(sync), _now()
        sensitive = frozenset(sensitive_fields)
        rows: list[dict[str, Any]] = []
        upserts: dict[str, dict[str, Any]] = {}
        archives: dict[str, dict[str, Any]] = {}
        forgets: set[str] = set()
        for result in results:
            rows.extend(audit_rows(result, run_id, name, partition_key, sensitive, hash_key, now))
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
            if op.replaces_key is not None:
                # A re-key: the record and its state move to the new key in this transaction.
                upserts.pop(op.replaces_key, None)
                archives.pop(op.replaces_key, None)
                forgets.add(op.replaces_key)
                rows.append(rekey_row(result, run_id, name, partition_key, now))
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
                    "identity": identity_key(op.identifier),
                }
        state = self.tables.state
        park, unpark = parking_changes(results)
        try:
            with self.warehouse.engine.begin() as conn:
                if fence is not None:
                    fence(conn)
                write = self.warehouse.sql_dialect.insert_rows
                if rows:
                    write(conn, insert(self.tables.audit), self.tables.audit, rows)
                self.failures.apply(conn, name, run_id, now, park, unpark)
                # Rows in key order: every flush locks state rows in the same order, so two
                # flushes touching the same keys can wait for each other but never deadlock.
                if upserts:
                    write(conn, self.state_upsert(keep_values=False), state, _by_key(upserts))
                if archives:
                    write(conn, self.state_upsert(keep_values=True), state, _by_key(archives))
                ordered = sorted(forgets)
                for start in range(0, len(ordered), _KEYS_PER_QUERY):
                    batch = ordered[start : start + _KEYS_PER_QUERY]
                    conn.execute(self.forget_statement(name, batch))
        except sa_exc.DBAPIError as exc:
            raise StateStoreError(
                f"cannot record results of run {run_id}: {self.warehouse.safe_message(exc)}",
                run_id=run_id,
            ) from None
        return len(rows)

    def forget_statement(self, sync: str | SyncConfig, keys: list[str]) -> Any:
        """DELETE the state rows of ``keys`` (a "forget": the row left, nothing archived)."""
        state = self.tables.state
        return delete(state).where(state.c.sync_name == _name(sync), state.c.source_key.in_(keys))

    def state_upsert(self, *, keep_values: bool) -> Any:
        """The upsert of state rows (``keep_values``: an archive keeps ``values_json``)."""
        state = self.tables.state

        def update(new: Any) -> dict[str, Any]:
            changes: dict[str, Any] = {
                "kizen_id": func.coalesce(new.kizen_id, state.c.kizen_id),
                "fingerprint": new.fingerprint,
                "archived": new.archived,
                "run_id": new.run_id,
                "updated_at": new.updated_at,
            }
            if not keep_values:  # an archive keeps the last synced values for a later restore
                changes["values_json"] = new.values_json
                changes["identity"] = new.identity
            return changes

        return self.warehouse.sql_dialect.upsert(state, ["sync_name", "source_key"], update)

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
                "started_at": utc(started_at),
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
                "started_at": utc(report.started_at),
                "finished_at": utc(report.finished_at),
                **report.counts.as_dict(),
                "planned": report.planned,
                "requests": report.requests,
                "message": report.message[:MESSAGE_LIMIT],
            }
        )

    def has_succeeded(self, sync: str | SyncConfig) -> bool:
        """Whether any run of this sync ever finished with status ``success`` (read-after-write
        verification samples a sync's first runs by default, until one succeeds).
        """
        self.ensure_schema()
        with self._connect() as conn:
            return conn.execute(self._succeeded_statement(sync)).first() is not None

    def _succeeded_statement(self, sync: str | SyncConfig) -> Any:
        runs = self.tables.runs
        return (
            select(runs.c.run_id)
            .where(runs.c.sync_name == _name(sync), runs.c.status == "success")
            .limit(1)
        )

    def run_upsert(self, values: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """The upsert of one runs row, and that row (counts default to 0)."""
        row: dict[str, Any] = dict.fromkeys(RUN_COUNTS, 0) | {"message": None} | values
        stmt = self.warehouse.sql_dialect.upsert(
            self.tables.runs, ["run_id"], lambda new: {k: new[k] for k in row if k != "run_id"}
        )
        return stmt, [row]

    def _upsert_run(self, values: dict[str, Any]) -> None:
        self.ensure_schema()
        stmt, rows = self.run_upsert(values)
        with self._connect() as conn:
            self.warehouse.sql_dialect.insert_rows(conn, stmt, self.tables.runs, rows)
            conn.commit()

    # --- reading -----------------------------------------------------------------------------

    def open_failures(
        self, sync: str | SyncConfig | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Records whose latest terminal attempt failed, most recent failure first."""
        return self._rows(self.open_failures_statement(sync, limit))

    def open_failures_statement(
        self, sync: str | SyncConfig | None = None, limit: int | None = None
    ) -> Any:
        """SELECT from the open-failures view, most recent failure first."""
        view = self.tables.open_failures
        stmt = select(view).order_by(view.c.last_failed_at.desc(), view.c.source_key)
        if sync is not None:
            stmt = stmt.where(view.c.sync_name == _name(sync))
        return stmt.limit(limit) if limit is not None else stmt

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
        rows: list[dict[str, Any]] = []
        with self.warehouse.engine.begin() as conn:
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                batch = ordered[start : start + _KEYS_PER_QUERY]
                ids = dict(conn.execute(self._kizen_ids_statement(name, batch)).all())
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
            self.warehouse.sql_dialect.insert_rows(
                conn, insert(self.tables.audit), self.tables.audit, rows
            )
            self.failures.apply(conn, name, run_id, now, {}, ordered)
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
        return self._rows(self.run_summaries_statement(sync, limit))

    def run_summaries_statement(
        self, sync: str | SyncConfig | None = None, limit: int | None = 20
    ) -> Any:
        """SELECT from the run-summary view, newest first."""
        view = self.tables.run_summary
        stmt = select(view).order_by(view.c.started_at.desc(), view.c.run_id)
        if sync is not None:
            stmt = stmt.where(view.c.sync_name == _name(sync))
        return stmt.limit(limit) if limit is not None else stmt

    def audit_rows(
        self, run_id: str | None = None, sync: str | SyncConfig | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows in the order they were written (for tests and the CLI)."""
        return self._rows(self.audit_rows_statement(run_id, sync))

    def audit_rows_statement(
        self, run_id: str | None = None, sync: str | SyncConfig | None = None
    ) -> Any:
        """SELECT audit rows in the order they were written."""
        audit = self.tables.audit
        stmt = select(audit).order_by(audit.c.id)
        if run_id is not None:
            stmt = stmt.where(audit.c.run_id == run_id)
        if sync is not None:
            stmt = stmt.where(audit.c.sync_name == _name(sync))
        return stmt

    def read_statements(self, sync: str | SyncConfig, keys: list[str]) -> list[Any]:
        """Every SELECT this store issues, for ``sync`` and ``keys`` (to compile them)."""
        view = self.tables.open_failures
        return [
            self.load_state_statement(sync, keys),
            self.open_failures_statement(sync, 10),
            self.open_failures_statement(),
            select(view.c.source_key).where(view.c.sync_name == _name(sync)),
            self.run_summaries_statement(sync),
            self.audit_rows_statement("run-1", sync),
            self._kizen_ids_statement(_name(sync), keys),
            self._succeeded_statement(sync),
        ]

    def _kizen_ids_statement(self, name: str, keys: list[str]) -> Any:
        state = self.tables.state
        return select(state.c.source_key, state.c.kizen_id).where(
            state.c.sync_name == name, state.c.source_key.in_(keys)
        )

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
