"""The warehouse side of the pre-flight check: connection, sources, state tables.

Writes nothing: the state tables are not created here. When they do not exist yet, the check
asks the warehouse's dialect whether the user may create them
(:meth:`~kizen_sync.warehouse.dialects.base.Dialect.may_create_state`), because the first run
creates them before it sends anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, inspect, select, text

from kizen_sync.config import ProjectConfig, SyncConfig
from kizen_sync.errors import SourceError, StateStoreError
from kizen_sync.preflight.results import Check, Status
from kizen_sync.preflight.values import check_values
from kizen_sync.schema import ObjectSchema
from kizen_sync.warehouse import Source, StateTables, Warehouse
from kizen_sync.warehouse.migrations import Migrator
from kizen_sync.warehouse.sqlfiles import migrations
from kizen_sync.warehouse.tables import state_tables

__all__ = ["check_warehouse"]

_AREA = "warehouse"
#: What Kizen's checks of one sync read: its object schema and, per dynamic-tags field, the
#: tags as label -> id.
KizenFound = tuple[ObjectSchema, Mapping[str, Mapping[str, str]]]


def _state(warehouse: Warehouse) -> Check:
    tables: StateTables = state_tables(warehouse.state_schema, warehouse.table_prefix)
    latest = max(f.version for f in migrations(warehouse.dialect))
    where = f"{warehouse.state_schema + '.' if warehouse.state_schema else ''}"
    names = f"{where}{warehouse.table_prefix}*"
    missing = Migrator(warehouse, tables).missing_message()
    if missing:  # a table dropped after the first run: the next run creates it again
        return Check(
            _AREA,
            "state tables",
            Status.WARN,
            missing,
            "nothing to do if the table was dropped on purpose; else restore it from a "
            "backup before the next run",
        )
    with warehouse.connect() as conn:
        if inspect(conn).has_table(tables.version.name, schema=warehouse.state_schema):
            applied = conn.execute(
                select(func.coalesce(func.max(tables.version.c.version), 0))
            ).scalar_one()
            conn.execute(select(func.count()).select_from(tables.state)).scalar_one()
            if applied >= latest:
                return Check(
                    _AREA, "state tables", Status.OK, f"{names} present (DDL version {applied})"
                )
            allowed, place = warehouse.sql_dialect.may_create_state(conn, warehouse.state_schema)
            detail = f"{names} at DDL version {applied}; the next run upgrades them to {latest}"
        else:
            allowed, place = warehouse.sql_dialect.may_create_state(conn, warehouse.state_schema)
            detail = f"{names} do not exist yet; the first run creates them in {place}"
    if allowed is None:
        return Check(
            _AREA, "state tables", Status.WARN, f"{detail} (DDL rights cannot be checked here)"
        )
    if not allowed:
        return Check(
            _AREA,
            "state tables",
            Status.FAIL,
            f"{detail}, but this user may not create tables there",
            "grant CREATE on that schema (or database) to the warehouse user, set "
            "warehouse.state_schema to one it may write, or have an owner run kizen-sync once",
            key="warehouse.state_schema",
        )
    return Check(_AREA, "state tables", Status.OK, f"{detail} (CREATE allowed)")


def _source(
    warehouse: Warehouse, index: int, sync: SyncConfig, kizen: Mapping[str, KizenFound]
) -> list[Check]:
    try:
        source = Source(warehouse, sync)
    except SourceError as exc:
        key = f"syncs[{index}].{exc.context.get('key') or 'source'}"
        return [
            Check(
                _AREA,
                "source",
                Status.FAIL,
                exc.message,
                f"fix {key}: name a table, view or column the warehouse has",
                sync.name,
                key,
            )
        ]
    columns = len({*sync.source.primary_key, *sync.mapped_columns})
    checks = [
        Check(
            _AREA,
            "source",
            Status.OK,
            f"{source.label}: the {columns} key and mapped columns exist",
            sync=sync.name,
        )
    ]
    if sync.name in kizen:
        schema, tags = kizen[sync.name]
        checks.extend(check_values(source, index, schema, tags))
    return checks


def check_warehouse(
    config: ProjectConfig,
    syncs: list[tuple[int, SyncConfig]],
    warehouse: Warehouse | None = None,
    kizen: Mapping[str, KizenFound] | None = None,
) -> list[Check]:
    """Connection, each sync's source and columns, the state tables and DDL rights, and the
    source's option and tag values against Kizen (:mod:`kizen_sync.preflight.values`).

    Args:
        config: the sync file.
        syncs: the syncs to check, with their index in the file.
        warehouse: an open warehouse (tests); default one from ``config.warehouse``.
        kizen: per sync name, what Kizen's checks read (the object schema and the dynamic
            tags); a sync without an entry (Kizen not reached) gets no values check.
    """
    owned = warehouse is None
    try:
        warehouse = warehouse or Warehouse.from_config(config.warehouse)
        with warehouse.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SourceError, StateStoreError) as exc:
        skipped = [
            Check(_AREA, "source", Status.SKIPPED, "the warehouse was not reached", sync=s.name)
            for _, s in syncs
        ]
        return [
            Check(
                _AREA,
                "connect",
                Status.FAIL,
                exc.message,
                "check warehouse.url (and the ${...} variables it uses)",
                key="warehouse.url",
            ),
            *skipped,
        ]
    try:
        checks = [Check(_AREA, "connect", Status.OK, warehouse.describe())]
        try:
            checks.append(_state(warehouse))
        except (SourceError, StateStoreError) as exc:
            checks.append(
                Check(
                    _AREA,
                    "state tables",
                    Status.FAIL,
                    exc.message,
                    "make the state tables readable by this user, or point warehouse."
                    "state_schema / table_prefix at tables it may use",
                )
            )
        for index, sync in syncs:
            checks.extend(_source(warehouse, index, sync, kizen or {}))
        return checks
    finally:
        if owned:
            warehouse.dispose()
