"""Diff speed and memory: ChangeDetector vs a plain full scan, SQLite and PostgreSQL.

    .venv/bin/python -m bench.diff_speed                 # 100k and 1M rows, both engines
    .venv/bin/python -m bench.diff_speed --rows 100000 --engines sqlite

Each measurement runs in a fresh subprocess so that peak RSS (VmHWM) belongs to it alone.
Fixture: 8 mapped columns (text, numeric, timestamp, date, boolean/int, NULLs); state seeded
from the current fingerprints; then 1 % churn: id % 200 = 1 updated (0.5 %), id % 500 = 2
deleted (0.2 %), 0.3 % new ids inserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Connection, insert, literal, select, text

from kizen_sync.config import SyncConfig
from kizen_sync.diff import ChangeDetector
from kizen_sync.source import Warehouse

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLUMNS = ["name", "email", "score", "revenue", "seen_at", "birthday", "active", "employees"]


def sync_config(table: str) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "name": "bench",
            "object": "accounts",
            "source": {"table": table, "primary_key": ["id"]},
            "identity": {"match_on": "name"},
            "fields": [{"column": c, "field": c} for c in COLUMNS],
        }
    )


def seed(url: str, rows: int, schema: str | None) -> None:
    warehouse = Warehouse(url, state_schema=schema)
    q = f"{schema}." if schema else ""

    def sql(conn: Connection, statement: str, params: dict[str, int] | None = None) -> None:
        # psycopg reads % as a placeholder even without parameters.
        conn.exec_driver_sql(statement.replace("%", "%%") if schema else statement, params or ())

    with warehouse.engine.begin() as conn:
        if schema:
            sql(conn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            sql(conn, f"CREATE SCHEMA {schema}")
            sql(
                conn,
                f"CREATE TABLE {q}src (id bigint PRIMARY KEY, name text, email text,"
                " score numeric(6,2), revenue numeric(14,2), seen_at timestamptz, birthday date,"
                " active boolean, employees int)",
            )
            sql(
                conn,
                f"INSERT INTO {q}src SELECT g, 'name ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE"
                " 'user' || g || '@example.com' END, (g % 1000) / 10.0, g * 1.25,"
                " timestamptz '2024-01-01' + g * interval '1 minute',"
                " date '1980-01-01' + (g % 9000),"
                f" g % 2 = 0, g % 5000 FROM generate_series(1, {rows}) g",
            )
        else:
            sql(
                conn,
                "CREATE TABLE src (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score NUMERIC,"
                " revenue NUMERIC, seen_at TEXT, birthday TEXT, active INTEGER, employees INTEGER)",
            )
            sql(
                conn,
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :rows)"
                " INSERT INTO src SELECT n, 'name ' || n, CASE WHEN n % 7 = 0 THEN NULL ELSE"
                " 'user' || n || '@example.com' END, (n % 1000) / 10.0, n * 1.25,"
                " datetime('2024-01-01', '+' || n || ' minutes'),"
                " date('1980-01-01', '+' || (n % 9000) || ' days'),"
                " n % 2, n % 5000 FROM g",
                {"rows": rows},
            )
    detector = ChangeDetector(warehouse, sync_config(f"{q}src"), check_keys=False)
    detector.store.ensure_schema()
    fp = detector.fingerprint_query().subquery()
    state = detector.store.tables.state
    with warehouse.engine.begin() as conn:
        conn.execute(
            insert(state).from_select(
                ["sync_name", "source_key", "fingerprint", "values_json", "archived", "updated_at"],
                select(
                    literal("bench"),
                    fp.c.source_key,
                    fp.c.fingerprint,
                    literal("{}"),
                    literal(False),
                    text("CURRENT_TIMESTAMP"),
                ),
            )
        )
        sql(conn, f"UPDATE {q}src SET name = name || ' (edited)' WHERE id % 200 = 1")
        sql(conn, f"DELETE FROM {q}src WHERE id % 500 = 2")
        new = rows * 3 // 1000
        sql(
            conn,
            f"INSERT INTO {q}src (id, name, email, score, active, employees)"
            f" SELECT id + {rows}, name, email, score, active, employees"
            f" FROM {q}src WHERE id <= {new}",
        )
        if schema:
            sql(conn, f"ANALYZE {q}src")
    warehouse.dispose()


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, schema: str | None, mode: str) -> dict[str, float]:
    warehouse = Warehouse(url, state_schema=schema)
    q = f"{schema}." if schema else ""
    detector = ChangeDetector(warehouse, sync_config(f"{q}src"))
    detector.store.ensure_schema()
    started = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "counts":
        counts = detector.counts()
        out.update(new=counts.new, changed=counts.changed, deleted=counts.deleted)
    elif mode == "stream":
        out["changed_rows"] = sum(len(c) for c in detector.iter_changes(chunk_size=1000))
    elif mode == "keycheck":
        detector.source.check_keys()
    elif mode == "scan":
        cols = ", ".join(["id", *COLUMNS])
        with warehouse.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).exec_driver_sql(
                f"SELECT {cols} FROM {q}src"
            )
            out["scanned_rows"] = sum(len(p) for p in result.partitions())
    elif mode == "scan_in_db":
        cols = " || ".join(f"coalesce(CAST({c} AS TEXT), '')" for c in COLUMNS)
        with warehouse.engine.connect() as conn:
            out["distinct_rows"] = conn.exec_driver_sql(
                f"SELECT count(DISTINCT {cols}) FROM {q}src"
            ).scalar_one()
    out["seconds"] = round(time.perf_counter() - started, 3)
    out["peak_rss_mib"] = round(vm_hwm_mib(), 1)
    warehouse.dispose()
    return out


def run_child(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.diff_speed", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--child", nargs=3, metavar=("URL", "SCHEMA", "MODE"))
    parser.add_argument("--seed", nargs=3, metavar=("URL", "SCHEMA", "ROWS"))
    args = parser.parse_args()
    if args.seed:
        url, schema, rows = args.seed
        seed(url, int(rows), schema if schema != "-" else None)
        print("{}")
        return
    if args.child:
        url, schema, mode = args.child
        print(json.dumps(measure(url, schema if schema != "-" else None, mode)))
        return
    modes = ["counts", "stream", "keycheck", "scan", "scan_in_db"]
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows or [100_000, 1_000_000]:
            for engine in args.engines.split(","):
                if engine == "sqlite":
                    url, schema = f"sqlite:///{tmp}/bench_{rows}.db", "-"
                else:
                    url, schema = PG_URL, f"bench_diff_{rows}"
                run_child("--seed", url, schema, str(rows))
                for mode in modes:
                    print(
                        json.dumps(
                            {
                                "engine": engine,
                                "rows": rows,
                                "mode": mode,
                                **run_child("--child", url, schema, mode),
                            }
                        )
                    )
                if engine == "postgresql":
                    warehouse = Warehouse(PG_URL)
                    with warehouse.engine.begin() as conn:
                        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                    warehouse.dispose()


if __name__ == "__main__":
    main()
