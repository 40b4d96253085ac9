"""Data the bench syncs: an ``accounts`` source table, its synced state, seeded Kizen records.

Everything is generated where it lives, because pushing a million rows through Python (or a
million records through the emulator) would measure the fixture instead of the connector:

* source rows come from ``generate_series`` (PostgreSQL), ``range`` (DuckDB) or a recursive
  CTE (SQLite);
* ``sync_state`` is filled with one ``INSERT ... SELECT`` of the very fingerprint expression
  the :class:`~kizen_sync.warehouse.ChangeDetector` computes, i.e. "as if the engine had synced it";
* Kizen records are written straight into an emulator state file with fixed ids
  (``bench_uuid(i)``), which the emulator process then loads at start.

Row ``i`` maps to Kizen record ``bench_uuid(i)`` named ``Account i`` on both sides, so a sync
by record id and a sync by name find the same records.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, false, insert, literal, select, text
from sqlalchemy.engine import Connection, CursorResult, Engine

__all__ = [
    "COLUMNS",
    "OBJECT",
    "PG_ADMIN_URL",
    "Churn",
    "bench_uuid",
    "create_accounts",
    "drop_table",
    "pg_database",
    "project_dict",
    "seed_emulator",
    "seed_state",
    "sync_dict",
]

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OBJECT = "accounts"
ID_PREFIX = "00000000-0000-4000-8000-"

#: source column -> (PostgreSQL type, SQLite type, Kizen field). Eight mapped columns of
#: different types (text, e-mail with NULLs, integer, decimal, date, datetime, checkbox).
COLUMNS: dict[str, tuple[str, str, str]] = {
    "name": ("text NOT NULL", "TEXT NOT NULL", "name"),
    "billing_email": ("text", "TEXT", "billing_email"),
    "employees": ("integer", "INTEGER", "employees"),
    "health_score": ("numeric(6,2)", "NUMERIC", "health_score"),
    "renewal_date": ("date", "DATE", "renewal_date"),
    "last_contacted": ("timestamptz", "DATETIME", "last_contacted"),
    "active": ("boolean", "BOOLEAN", "active"),
    "description": ("text", "TEXT", "description"),
}


def bench_uuid(i: int) -> str:
    """The Kizen record id of source row ``i`` (a valid UUID, same formula in SQL)."""
    return f"{ID_PREFIX}{i:012d}"


# --- PostgreSQL database of one bench run -------------------------------------------------------


@contextlib.contextmanager
def pg_database(name: str) -> Iterator[str]:
    """Create database ``name`` for this run and drop it (forcibly) afterwards; yield its URL."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            _sql(conn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _sql(conn, f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            _sql(conn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# --- source table -----------------------------------------------------------------------------


def _engine(url: str) -> Engine:
    return create_engine(url)


def _sql(conn: Connection, statement: str) -> CursorResult[Any]:
    """Run our own SQL text (``%`` and ``::`` safe through ``text()``)."""
    return conn.execute(text(statement))


def create_accounts(url: str, table: str, rows: int) -> None:
    """(Re)create ``table`` with ``rows`` generated rows (ids 1..rows) in SQL."""
    engine = _engine(url)
    dialect = engine.dialect.name
    cols = ", ".join(
        f"{c} {types[1 if dialect == 'sqlite' else 0]}" for c, types in COLUMNS.items()
    )
    try:
        with engine.begin() as conn:
            _sql(conn, f"DROP TABLE IF EXISTS {table}")
            if dialect == "duckdb":
                _sql(
                    conn,
                    f"CREATE TABLE {table} (id bigint PRIMARY KEY, kizen_id text, {cols},"
                    " updated_at timestamptz NOT NULL)",
                )
                _sql(
                    conn,
                    f"INSERT INTO {table} SELECT g, '{ID_PREFIX}' || lpad(g::text, 12, '0'),"
                    " 'Account ' || g,"
                    " CASE WHEN g % 7 = 0 THEN NULL ELSE 'acct' || g || '@example.com' END,"
                    " g % 5000, (g % 1000) / 10.0, date '2024-01-01' + CAST(g % 700 AS INTEGER),"
                    " timestamptz '2024-01-01 00:00:00+00' + to_minutes(g),"
                    " g % 2 = 0, 'Row ' || g,"
                    " timestamptz '2025-01-01 00:00:00+00' + to_seconds(g)"
                    f" FROM range(1, {int(rows) + 1}) t(g)",
                )
            elif dialect == "postgresql":
                _sql(
                    conn,
                    f"CREATE TABLE {table} (id bigint PRIMARY KEY, kizen_id text, {cols},"
                    " updated_at timestamptz NOT NULL)",
                )
                _sql(
                    conn,
                    f"INSERT INTO {table} SELECT g, '{ID_PREFIX}' || lpad(g::text, 12, '0'),"
                    " 'Account ' || g,"
                    " CASE WHEN g % 7 = 0 THEN NULL ELSE 'acct' || g || '@example.com' END,"
                    " g % 5000, (g % 1000) / 10.0, date '2024-01-01' + (g % 700),"
                    " timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',"
                    " g % 2 = 0, 'Row ' || g,"
                    " timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'"
                    f" FROM generate_series(1, {int(rows)}) g",
                )
                _sql(conn, f"CREATE INDEX ON {table} (updated_at)")
                _sql(conn, f"ANALYZE {table}")
            else:
                _sql(
                    conn,
                    f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, kizen_id TEXT, {cols},"
                    " updated_at DATETIME NOT NULL)",
                )
                _sql(
                    conn,
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g"
                    f" WHERE n < {int(rows)}) INSERT INTO {table} SELECT n,"
                    f" printf('{ID_PREFIX}%012d', n), 'Account ' || n,"
                    " CASE WHEN n % 7 = 0 THEN NULL ELSE 'acct' || n || '@example.com' END,"
                    " n % 5000, (n % 1000) / 10.0, date('2024-01-01', '+' || (n % 700) || ' days'),"
                    " datetime('2024-01-01', '+' || n || ' minutes'), n % 2 = 0, 'Row ' || n,"
                    " datetime('2025-01-01', '+' || n || ' seconds') FROM g",
                )
                _sql(conn, f"CREATE INDEX ix_{table}_updated ON {table} (updated_at)")
    finally:
        engine.dispose()


def drop_table(url: str, table: str) -> None:
    """Drop a source table created by :func:`create_accounts`."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            _sql(conn, f"DROP TABLE IF EXISTS {table}")
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Churn:
    """A change to the source: every ``update_every``-th row edited (and its ``updated_at``
    bumped), every ``delete_every``-th row deleted, ``new_rows`` rows appended.
    """

    update_every: int = 0
    delete_every: int = 0
    new_rows: int = 0
    touch_every: int = 0  # rows whose ``updated_at`` moves while every synced value stays

    @classmethod
    def mixed(cls, rows: int, fraction: float) -> Churn:
        """1 % churn as in reliability-performance.md 1.4: half updates, 0.3 new, 0.2 deleted."""
        return cls(
            update_every=max(1, round(1 / (fraction * 0.5))),
            delete_every=max(1, round(1 / (fraction * 0.2))),
            new_rows=round(rows * fraction * 0.3),
        )

    @classmethod
    def updates(cls, fraction: float) -> Churn:
        """Only edits (what a cursor-based peer can see as well)."""
        return cls(update_every=max(1, round(1 / fraction)))

    @classmethod
    def touches(cls, fraction: float) -> Churn:
        """Edits plus as many *touches*: ``updated_at`` bumped with no synced value changed,
        as when an ETL job rewrites a row or an unsynced column changes.
        """
        every = max(1, round(1 / fraction))
        return cls(update_every=every, touch_every=every)

    def apply(self, url: str, table: str, rows: int) -> dict[str, int]:
        """Change the source table; return how many rows were updated, deleted, inserted."""
        engine = _engine(url)
        pg = engine.dialect.name == "postgresql"
        sqlite = engine.dialect.name == "sqlite"
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')" if sqlite else "now()"
        out = {"updated": 0, "deleted": 0, "inserted": 0, "touched": 0}
        try:
            with engine.begin() as conn:
                if self.update_every:
                    out["updated"] = _sql(
                        conn,
                        f"UPDATE {table} SET name = name || ' (edited)', employees = employees + 1,"
                        f" updated_at = {now} WHERE id % {self.update_every} = 1",
                    ).rowcount
                if self.touch_every:
                    out["touched"] = _sql(
                        conn,
                        f"UPDATE {table} SET updated_at = {now} WHERE id % {self.touch_every} = 3",
                    ).rowcount
                if self.delete_every:
                    out["deleted"] = _sql(
                        conn, f"DELETE FROM {table} WHERE id % {self.delete_every} = 2"
                    ).rowcount
                if self.new_rows:
                    out["inserted"] = _sql(
                        conn,
                        f"INSERT INTO {table} SELECT id + {rows}, NULL, name || ' new',"
                        " billing_email, employees, health_score, renewal_date, last_contacted,"
                        f" active, description, {now} FROM {table} WHERE id <= {self.new_rows}",
                    ).rowcount
                if pg:
                    _sql(conn, f"ANALYZE {table}")
        finally:
            engine.dispose()
        return out


# --- sync definitions ---------------------------------------------------------------------------


def sync_dict(table: str, name: str = "bench", **overrides: Any) -> dict[str, Any]:
    """A sync of ``table`` to Kizen ``accounts``: update by record id, the eight columns.

    ``verify: none``: the figures are the write path's. By default a sync's runs read back
    the first 10 written records and 5 % of the rest (one GET each) until one succeeds.
    """
    spec: dict[str, Any] = {
        "name": name,
        "object": OBJECT,
        "source": {"table": table, "primary_key": ["id"]},
        "identity": {"record_id_column": "kizen_id"},
        "mode": "update",
        "verify": "none",
        "fields": [{"column": c, "field": f} for c, (_, _, f) in COLUMNS.items()],
    }
    spec.update(overrides)
    return spec


def project_dict(url: str, syncs: list[dict[str, Any]], **kizen: Any) -> dict[str, Any]:
    """A whole sync file (as parsed YAML) for :func:`kizen_sync.config.parse_config`."""
    return {"warehouse": {"url": url}, "kizen": kizen, "syncs": syncs}


def seed_state(url: str, sync: dict[str, Any]) -> int:
    """Mark every source row as synced: state rows with the engine's own fingerprints.

    Returns the number of state rows written.
    """
    from kizen_sync.config import SyncConfig
    from kizen_sync.warehouse import ChangeDetector, Warehouse

    config = SyncConfig.model_validate(sync)
    warehouse = Warehouse(url)
    try:
        detector = ChangeDetector(warehouse, config, check_keys=False)
        detector.store.ensure_schema()
        source, state = detector.source, detector.store.tables.state
        query = select(
            literal(config.name),
            source.key_expr(),
            source.column("kizen_id"),
            detector.fingerprint_expr(),
            literal("{}"),
            false(),
            text("CURRENT_TIMESTAMP"),
        ).select_from(source.selectable)
        columns = [
            "sync_name",
            "source_key",
            "kizen_id",
            "fingerprint",
            "values_json",
            "archived",
            "updated_at",
        ]
        with warehouse.engine.begin() as conn:
            written = conn.execute(insert(state).from_select(columns, query)).rowcount
            if warehouse.dialect == "postgresql":
                _sql(conn, f"ANALYZE {state.fullname}")
        return int(written)
    finally:
        warehouse.dispose()


# --- Kizen records ------------------------------------------------------------------------------


def seed_emulator(path: Path, rows: int) -> Path:
    """Write an emulator state file holding the demo business plus ``rows`` accounts.

    Record ``bench_uuid(i)`` is named ``Account i``, like source row ``i``. Goes through the
    emulator's own create path (validation included), in process, in well under a second for
    10,000 records.
    """
    from kizen_sync.emulator import Emulator

    path.unlink(missing_ok=True)
    emulator = Emulator.demo(state_path=path)
    try:
        service = emulator.service
        with service.store.lock:
            obj = service.object(OBJECT)
            for i in range(1, rows + 1):
                service.create(
                    obj, [{"name": "name", "value": f"Account {i}"}], record_id=bench_uuid(i)
                )
    finally:
        emulator.close()
    return path


def new_id() -> str:
    """A short unique suffix for names of tables and databases of one run."""
    return uuid.uuid4().hex[:8]
