"""Create and upgrade kizen-sync's tables from the DDL files, safely between processes.

The DDL lives in ``sql/<dialect>/NNN_*.sql`` (readable, reviewable); each applied file is
recorded in ``{prefix}schema_version``. Two processes may race to create the tables: the
dialect's :meth:`~.dialects.base.Dialect.migration_lock` serialises them, and every statement
is idempotent on its own as well.

A table dropped after its file was applied (by hand, by a cleanup script) is created again:
:meth:`Migrator.ensure` with ``verify=True`` (the runner asks at the start of every run) checks
that every table exists and, if one is missing, applies every file again (each statement is
idempotent; an ``ADD COLUMN`` that finds its column is skipped), with a warning that says what
the re-created table means for the next run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy import exc as sa_exc

from kizen_sync.errors import StateStoreError
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.sqlfiles import SqlFile, migrations, render, split_statements, sql_dir
from kizen_sync.warehouse.tables import StateTables

__all__ = ["Migrator"]

logger = logging.getLogger("kizen_sync.warehouse")

#: What a missing table means, for the warning that follows its re-creation.
_MISSING_MEANS = {
    "state": "every source row is planned as new and matched to its Kizen record by its "
    "identifier (match_on: upsert or lookup) or its record id column, so no record is "
    "created twice; rows deleted from the source meanwhile are not archived",
    "audit": "the history of attempts starts again, and open failures are no longer listed",
    "runs": "the history of runs starts again",
    "leases": "no run held a lease",
    "parked": "parked failures are sent again by the next run",
}


class Migrator:
    """Brings the state tables of one warehouse to the latest DDL version, once per process.

    Args:
        warehouse: where the tables live.
        tables: their handles (for the version table).
    """

    def __init__(self, warehouse: Warehouse, tables: StateTables) -> None:
        self.warehouse = warehouse
        self.tables = tables
        self._ready = False

    def ensure(self, *, verify: bool = False) -> None:
        """Create or upgrade the tables and views; cheap when they are current.

        Args:
            verify: check that every table still exists (once per call, even when this
                process already migrated) and create missing ones again.

        Raises:
            StateStoreError: the DDL failed or this dialect has no DDL files.
        """
        if self._ready and not verify:
            return
        try:
            files = migrations(self.warehouse.dialect)
        except FileNotFoundError as exc:
            raise StateStoreError(str(exc)) from None
        latest = max(f.version for f in files)
        try:
            missing = self._missing_tables() if verify else []
            if missing or self._applied_version() < latest:
                with self.warehouse.engine.connect() as conn:
                    with self.warehouse.sql_dialect.migration_lock(
                        conn, self.warehouse.state_schema
                    ):
                        self._migrate(conn, files, again=bool(missing))
                    conn.commit()
                self._report_recreated(missing)
        except sa_exc.DBAPIError as exc:
            raise StateStoreError(
                f"cannot create the state tables in {self.warehouse.describe()}: "
                f"{self.warehouse.safe_message(exc)}"
            ) from None
        self._ready = True

    def _applied_version(self) -> int:
        with self.warehouse.engine.connect() as conn:
            if not self.warehouse.sql_dialect.has_table(
                conn, self.tables.version.name, self.warehouse.state_schema
            ):
                return 0
            return int(
                conn.execute(
                    select(func.coalesce(func.max(self.tables.version.c.version), 0))
                ).scalar_one()
            )

    def missing_message(self) -> str:
        """Why a command that creates nothing cannot go on, or "" when no table is missing.

        ``plan`` and the guard check write nothing, so they do not re-create a dropped table
        (``run`` does, see :meth:`ensure`); without this they stopped on the database's own
        "relation does not exist", which says neither what happened nor what to do.
        """
        missing = self._missing_tables()
        if not missing:
            return ""
        tables = ", ".join(getattr(self.tables, h).fullname for h in missing)
        means = "; ".join(_MISSING_MEANS[h] for h in missing)
        return (
            f"kizen-sync's table {tables} is missing (dropped since it was created?). This "
            "command writes nothing, so it does not create it again; the next `kizen-sync "
            f"run` (or `retry`) does, at its start, and then: {means}."
        )

    def _missing_tables(self) -> list[str]:
        """Handles (``state``, ``audit``, ...) of the tables a migrated schema lacks; empty
        before the first migration (nothing is "missing" from a fresh warehouse).
        """
        dialect = self.warehouse.sql_dialect
        with self.warehouse.engine.connect() as conn:
            schema = self.warehouse.state_schema
            if not dialect.has_table(conn, self.tables.version.name, schema):
                return []
            handles = {
                "state": self.tables.state,
                "audit": self.tables.audit,
                "runs": self.tables.runs,
                "leases": self.tables.leases,
                "parked": self.tables.parked,
            }
            return [h for h, t in handles.items() if not dialect.has_table(conn, t.name, schema)]

    def _report_recreated(self, missing: list[str]) -> None:
        for handle in missing:
            table = getattr(self.tables, handle)
            logger.warning(
                "kizen-sync's table %s was missing and has been created again: %s.",
                table.fullname,
                _MISSING_MEANS[handle],
            )

    def _migrate(self, conn: Connection, files: list[SqlFile], *, again: bool = False) -> None:
        schema, prefix = self.warehouse.state_schema, self.warehouse.table_prefix
        qualify = self.warehouse.sql_dialect.qualify
        bootstrap = sql_dir() / self.warehouse.dialect / "schema_version.sql"
        for statement in split_statements(
            render(bootstrap.read_text(encoding="utf-8"), schema, prefix, qualify)
        ):
            conn.exec_driver_sql(statement)
        version = self.tables.version
        applied = set(conn.execute(select(version.c.version)).scalars())
        for file in files:
            if file.version in applied and not again:
                continue
            for statement in file.statements(schema=schema, prefix=prefix, qualify=qualify):
                self._execute(conn, statement, again=file.version in applied)
            if file.version in applied:
                continue
            self.warehouse.sql_dialect.insert_rows(
                conn,
                insert(version),
                version,
                [{"version": file.version, "name": file.name, "applied_at": datetime.now(UTC)}],
            )

    @staticmethod
    def _execute(conn: Connection, statement: str, *, again: bool) -> None:
        """Run one DDL statement; applying a file again skips a column that exists already
        (SQLite has no ``ADD COLUMN IF NOT EXISTS``).
        """
        upper = statement.upper()
        # ADD COLUMN IF NOT EXISTS needs no savepoint (DuckDB has none).
        if not again or "ADD COLUMN" not in upper or "IF NOT EXISTS" in upper:
            conn.exec_driver_sql(statement)
            return
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(statement)
        except sa_exc.OperationalError as exc:
            if "duplicate column" not in str(exc.orig).lower():
                raise
