"""Where the SQLite diff's time goes, and what the alternatives to its fingerprint would cost.

``python -m bench.sqlite_diff [--rows N] [--repeats R] [--db PATH]``

Builds the bench's SQLite fixture (``bench.fixtures``: ``rows`` generated rows, a
``sync_state`` of the shipped fingerprints, 1 % churn) in a temporary file (or reuses
``--db``), then runs each statement below on one ``sqlite3`` connection, round-robin ``R``
times, and prints the best CPU seconds of this process (SQLite runs in it, so CPU time is what
the statement costs, whatever else the machine runs) and the best wall time, with the load
average. Every part of a run's change detection is here as it ships (the statements come from
:class:`~kizen_sync.warehouse.ChangeDetector`), beside the plain streamed scan of section 3 and
the fingerprint forms tried instead of the shipped one (``bench/README.md`` has the figures).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fixtures
from kizen_sync.warehouse.dialects.sqlite import _canonical_other

TABLE = "accounts"
SYNC = "bench"


def _statements(url: str) -> dict[str, str]:
    """name -> SQL: the shipped statements, then the alternatives measured beside them."""
    from kizen_sync.config import SyncConfig
    from kizen_sync.warehouse import ChangeDetector, Warehouse
    from kizen_sync.warehouse.fingerprint import fingerprint_columns, mapping_signature

    sync = SyncConfig.model_validate(fixtures.sync_dict(TABLE, name=SYNC))
    warehouse = Warehouse(url)
    try:
        detector = ChangeDetector(warehouse, sync)

        def sql(stmt: Any) -> str:
            return str(stmt.compile(warehouse.engine, compile_kwargs={"literal_binds": True}))

        nulls, dupes = detector.source.key_check_statements()
        (guard,) = detector.archive_count_statements()
        stream, vanished = detector.change_statements()
        names = fingerprint_columns(sync)
        signature = mapping_signature(sync)
    finally:
        warehouse.dispose()
    args = ", ".join(f"{TABLE}.{n}" for n in names)
    canonical = " || char(31) || ".join(
        [f"'{len(signature)}:{signature}'", *(_canonical_sql(f"{TABLE}.{n}") for n in names)]
    )
    quoted = " || ',' || ".join([f"'{signature}'", *(f"quote({TABLE}.{n})" for n in names)])
    state = "kizen_sync_sync_state"
    return {
        "plain streamed scan (section 3)": (
            f"SELECT id, {', '.join(fixtures.COLUMNS)} FROM {TABLE}"
        ),
        "key check (NULL, duplicates)": f"{sql(nulls)}; {sql(dupes)}",
        "guard counts: NOT IN (shipped)": sql(guard),
        "guard counts: key join from the source": (
            f"SELECT (SELECT count(*) FROM {state} WHERE sync_name = '{SYNC}' AND archived != 1)"
            f" - (SELECT count(*) FROM {TABLE} CROSS JOIN {state} st ON st.sync_name = '{SYNC}'"
            f" AND st.source_key = CAST({TABLE}.id AS TEXT) AND st.archived != 1)"
        ),
        "change stream (shipped)": sql(stream),
        "change stream, fingerprint a no-op Python call": sql(stream).replace(
            "kizen_fingerprint(", "kizen_noop("
        ),
        "vanished keys: EXCEPT (shipped)": sql(vanished),
        "fingerprint alone: shipped (one Python call, blake2b)": (
            f"SELECT count(kizen_fingerprint('{signature}', {args})) FROM {TABLE}"
        ),
        "fingerprint alone: same, loop instead of comprehension": (
            f"SELECT count(kizen_fingerprint_loop('{signature}', {args})) FROM {TABLE}"
        ),
        "fingerprint alone: no-op Python call, same arguments": (
            f"SELECT count(kizen_noop('{signature}', {args})) FROM {TABLE}"
        ),
        "canonical text in SQL, stored and compared as is": (
            f"SELECT count({canonical}) FROM {TABLE}"
        ),
        "canonical text in SQL + one-argument blake2b": (
            f"SELECT count(kizen_hash_text({canonical})) FROM {TABLE}"
        ),
        "quote() of each column, stored and compared as is": (
            f"SELECT count({quoted}) FROM {TABLE}"
        ),
        "quote() of each column + one-argument blake2b": (
            f"SELECT count(kizen_hash_text({quoted})) FROM {TABLE}"
        ),
    }


def _canonical_sql(col: str) -> str:
    """The shipped SQLite canonical form of one value (``sqlite_canonical``) in SQL, with
    Python's ``repr`` (a C call) only for a REAL that is not integral.
    """
    return (
        f"CASE typeof({col}) WHEN 'text' THEN length({col}) || ':' || {col}"
        f" WHEN 'integer' THEN {col} WHEN 'null' THEN char(30)"
        f" WHEN 'real' THEN CASE WHEN {col} = CAST({col} AS INTEGER) AND {col} > -1e15"
        f" AND {col} < 1e15 THEN CAST(CAST({col} AS INTEGER) AS TEXT) ELSE kizen_repr({col}) END"
        f" ELSE 'x' || lower(hex({col})) END"
    )


def _fingerprint_loop(*values: Any) -> str:
    """The shipped fingerprint written as a loop (same output, fewer calls)."""
    parts = []
    for v in values:
        kind = type(v)
        if kind is str:
            parts.append(f"{len(v)}:{v}")
        elif kind is int:
            parts.append(str(v))
        elif v is None:
            parts.append("\x1e")
        else:
            parts.append(_canonical_other(v))
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    from kizen_sync.warehouse.dialects.sqlite import sqlite_fingerprint

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    functions: dict[str, tuple[int, Callable[..., Any]]] = {
        "kizen_fingerprint": (-1, sqlite_fingerprint),
        "kizen_fingerprint_loop": (-1, _fingerprint_loop),
        "kizen_noop": (-1, lambda *values: None),
        "kizen_repr": (1, repr),
        "kizen_hash_text": (
            1,
            lambda text: hashlib.blake2b(text.encode(), digest_size=8).hexdigest(),
        ),
    }
    for name, (arity, function) in functions.items():
        conn.create_function(name, arity, function, deterministic=True)
    return conn


def _run(conn: sqlite3.Connection, sql: str) -> tuple[float, float, int]:
    wall, cpu, rows = time.perf_counter(), time.process_time(), 0
    for statement in sql.split("; "):
        cursor = conn.execute(statement)
        while chunk := cursor.fetchmany(1000):
            rows += len(chunk)
    return time.perf_counter() - wall, time.process_time() - cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--db", type=Path, help="reuse (or build once into) this SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            fixtures.create_accounts(url, TABLE, args.rows)
            fixtures.seed_state(url, fixtures.sync_dict(TABLE, name=SYNC))
            fixtures.Churn.mixed(args.rows, 0.01).apply(url, TABLE, args.rows)
        statements = _statements(url)
        conn = _connect(path)
        best: dict[str, list[tuple[float, float, int]]] = {name: [] for name in statements}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for name, sql in statements.items():
                best[name].append(_run(conn, sql))
                loads.append(os.getloadavg()[0])
        conn.close()
    print(f"{'statement':56} {'CPU s':>6} {'wall s':>7} {'rows':>9}")
    for name, runs in best.items():
        cpu, wall = min(r[1] for r in runs), min(r[0] for r in runs)
        print(f"{name:56} {cpu:6.2f} {wall:7.2f} {runs[0][2]:9,}")
    print(f"best of {args.repeats}; load average (1 min) {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
