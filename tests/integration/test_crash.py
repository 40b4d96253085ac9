"""Kill -9 in the middle of an apply, run again: Kizen ends equal to the source, no duplicates.

On every live warehouse (SQLite, PostgreSQL, DuckDB: the ``db`` fixture).

The CLI runs in a subprocess against the emulator served over real HTTP with latency, so the
kill lands while requests are in flight and results are unflushed. Afterwards every source
row must be in Kizen exactly once (counted by identifier), with the source's values, and
have a terminal ``success`` in the audit table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kizen_sync.emulator import Emulator
from kizen_sync.warehouse import StateStore, Warehouse
from tests.conftest import Db

ROWS = 240
WRITES = ("POST", "PATCH", "DELETE")
#: Upper bound on any wait here (a run normally takes a few seconds).
HANG_GUARD_S = 240


def _cli(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from kizen_sync.cli import main; main()", "run", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_kill_9_mid_apply_then_rerun_converges_without_duplicates(tmp_path: Path, db: Db):
    db.run("CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT, first TEXT)")
    db.run(
        "INSERT INTO {s}people VALUES (:i, :e, :f)",
        [{"i": i, "e": f"crash{i}@example.com", "f": f"Name{i}"} for i in range(ROWS)],
    )
    url = db.warehouse.engine.url.render_as_string(hide_password=False)
    # A DuckDB file is locked by the process that has it open: the CLI must be the only one.
    db.warehouse.dispose()

    emu = Emulator.demo()
    api_key, user_id, business_id = emu.credentials
    emu.set_knobs(latency_ms=25)
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        config = tmp_path / "syncs.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "warehouse": {"url": url, "state_schema": db.schema},
                    "kizen": {
                        "base_url": base_url,
                        "user_id": user_id,
                        "business_id": business_id,
                        "max_in_flight": 8,
                    },
                    "syncs": [
                        {
                            "name": "crash",
                            "object": "client_client",
                            "source": {"table": db.table("people"), "primary_key": ["id"]},
                            "identity": {"match_on": "email"},
                            "mode": "upsert",
                            "fields": [
                                {"column": "email", "field": "email"},
                                {"column": "first", "field": "first_name"},
                            ],
                        }
                    ],
                }
            )
        )
        env = {**os.environ, "KIZEN_API_KEY": api_key}

        first = _cli(config, env)
        # A hang guard, not a speed requirement: start-up alone takes seconds on a busy machine.
        deadline = time.monotonic() + HANG_GUARD_S
        while sum(emu.request_log.total(method=m) for m in WRITES) < ROWS // 3:
            assert first.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, f"the run sent too few writes in {HANG_GUARD_S} s"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        sent_before_kill = sum(emu.request_log.total(method=m) for m in WRITES)
        assert sent_before_kill < ROWS

        second = _cli(config, env)
        output, _ = second.communicate(timeout=HANG_GUARD_S)
        assert second.returncode == 0, output.decode()

        records = emu.records("client_client")
    mine = [r for r in records if str(_value(r, "email")).startswith("crash")]
    emails = [_value(r, "email") for r in mine]
    assert len(emails) == len(set(emails)) == ROWS  # exactly once each
    by_email = {_value(r, "email"): _value(r, "first_name") for r in mine}
    assert by_email == {f"crash{i}@example.com": f"Name{i}" for i in range(ROWS)}

    warehouse = Warehouse(url, state_schema=db.schema)
    try:
        store = StateStore(warehouse)
        audit = store.audit_rows(sync="crash")
        succeeded = {row["source_key"] for row in audit if row["outcome"] == "success"}
        assert succeeded == {str(i) for i in range(ROWS)}
        assert store.open_failures("crash") == []
    finally:
        warehouse.dispose()


def _value(record: dict, name: str) -> object:
    """A field's value from an emulator record (fields keyed by id, each with its name)."""
    for field in record["fields"].values():
        if field["name"] == name:
            return field.get("value")
    return None
