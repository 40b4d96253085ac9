"""Create and upgrade kizen-sync's tables from the DDL files, safely between processes.

The DDL lives in ``sql/<dialect>/NNN_*.sql`` (readable, reviewable); each applied file is
recorded in ``{prefix}schema_version``. Two processes may race to create the tables: the
dialect's :meth:`~.dialects.base.Dialect.migration_lock` serialises them, and every statement
is idempotent on its own as well.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, inspect, select
from sqlalchemy import exc as sa_exc

from kizen_sync.errors import StateStoreError
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.sqlfiles import SqlFile, migrations, render, split_statements, sql_dir
from kizen_sync.warehouse.tables import StateTables

__all__ = ["Migrator"]


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

    def ensure(self) -> None:
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
                with self.warehouse.engine.connect() as conn:
                    with self.warehouse.sql_dialect.migration_lock(
                        conn, self.warehouse.state_schema
                    ):
                        self._migrate(conn, files)
                    conn.commit()
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

    def _migrate(self, conn: Connection, files: list[SqlFile]) -> None:
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
                insert(version).values(
                    version=file.version, name=file.name, applied_at=datetime.now(UTC)
                )
            )
