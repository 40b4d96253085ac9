"""The run lease: one run per sync at a time, on SQLite (lease row) and PostgreSQL (advisory).

Every wait here is on something observable (a line logged, a line a process printed, a lease
row), never on the clock; where a lease must look expired, its row is written that way.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from kizen_sync.errors import LeaseHeldError, LeaseLostError
from kizen_sync.models import AttemptRecord, Operation, Outcome, PlannedOp, RecordResult
from kizen_sync.warehouse import StateStore
from kizen_sync.warehouse.lease import ABANDONED, Leases, Process


def _leases(db: Any) -> Leases:
    store = StateStore(db.warehouse)
    store.ensure_schema()
    return Leases(db.warehouse, store.tables)


def _result(key: str) -> RecordResult:
    now = datetime.now(UTC)
    op = PlannedOp(Operation.UPDATE, key, kizen_id=f"id-{key}", fingerprint="f", new_values={})
    attempt = AttemptRecord(1, Outcome.SUCCESS, now, now)
    return RecordResult(op, Outcome.SUCCESS, f"id-{key}", (attempt,))


def test_a_second_run_is_told_which_run_holds_the_sync_and_since_when(db):
    leases = _leases(db)
    with leases.acquire("contacts", "run-1") as first:
        with pytest.raises(LeaseHeldError) as caught:
            leases.acquire("contacts", "run-2", wait_s=0)
        error = caught.value
        assert error.holder_run_id == "run-1"
        assert error.holder == Process.current().owner
        assert error.since is not None
        assert "another run holds the sync: run run-1" in error.message
        assert "--wait SECONDS" in error.message
        first.check()  # still ours
        # Another sync is not held by it.
        leases.acquire("accounts", "run-3").release()
    with leases.acquire("contacts", "run-2"):
        assert leases.holder("contacts").run_id == "run-2"  # type: ignore[union-attr]
    assert leases.holder("contacts") is None


def test_a_waiting_run_takes_the_sync_when_the_holder_releases_it(db, caplog):
    leases = _leases(db)
    first = leases.acquire("contacts", "run-1")
    waiting = threading.Event()

    class Told(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting up to" in record.getMessage():
                waiting.set()

    handler = Told()
    logging.getLogger("kizen_sync.lease").addHandler(handler)
    got: list[Any] = []
    try:
        waiter = threading.Thread(
            target=lambda: got.append(leases.acquire("contacts", "run-2", wait_s=600))
        )
        waiter.start()
        assert waiting.wait(timeout=120), "the second run never said it was waiting"
        assert not got  # still waiting while the first holds it
        first.release()
        waiter.join(timeout=120)
    finally:
        logging.getLogger("kizen_sync.lease").removeHandler(handler)
    assert len(got) == 1
    assert got[0].run_id == "run-2"
    got[0].release()


def test_an_expired_lease_of_another_machine_is_taken_over_and_its_run_abandoned(sqlite_url):
    from kizen_sync.warehouse import Warehouse

    warehouse = Warehouse(sqlite_url)
    store = StateStore(warehouse)
    store.ensure_schema()
    leases = Leases(warehouse, store.tables)
    try:
        store.start_run("dead-run", "contacts", None, started_at=datetime.now(UTC))
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        with warehouse.engine.begin() as conn:
            conn.execute(
                store.tables.leases.insert().values(
                    sync_name="contacts",
                    run_id="dead-run",
                    owner="elsewhere pid 1",
                    host_id="another-machine",
                    pid=1,
                    pid_start=1,
                    acquired_at=long_ago,
                    heartbeat_at=long_ago,
                    expires_at=long_ago + timedelta(seconds=60),
                    version=7,
                )
            )
        with leases.acquire("contacts", "run-2", wait_s=0) as lease:
            assert lease.previous is not None
            assert lease.previous.run_id == "dead-run"
        runs = {r["run_id"]: r for r in store.run_summaries("contacts")}
        assert runs["dead-run"]["status"] == ABANDONED
        assert "run-2" in runs["dead-run"]["message"]
        assert runs["dead-run"]["finished_at"] is not None
    finally:
        warehouse.dispose()


def test_a_live_lease_of_another_machine_is_not_taken(sqlite_url):
    from kizen_sync.warehouse import Warehouse

    warehouse = Warehouse(sqlite_url)
    store = StateStore(warehouse)
    store.ensure_schema()
    leases = Leases(warehouse, store.tables)
    try:
        soon = datetime.now(UTC) + timedelta(hours=1)
        with warehouse.engine.begin() as conn:
            conn.execute(
                store.tables.leases.insert().values(
                    sync_name="contacts",
                    run_id="far-run",
                    owner="far pid 9",
                    host_id="another-machine",
                    pid=9,
                    pid_start=9,
                    acquired_at=datetime.now(UTC),
                    heartbeat_at=datetime.now(UTC),
                    expires_at=soon,
                    version=1,
                )
            )
        with pytest.raises(LeaseHeldError, match="run far-run \\(far pid 9\\)"):
            leases.acquire("contacts", "run-2", wait_s=0)
    finally:
        warehouse.dispose()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from kizen_sync.warehouse import StateStore, Warehouse
    from kizen_sync.warehouse.lease import Leases
    warehouse = Warehouse(sys.argv[1], state_schema=sys.argv[2] or None)
    store = StateStore(warehouse)
    store.ensure_schema()
    lease = Leases(warehouse, store.tables).acquire("contacts", "killed-run")
    store.start_run("killed-run", "contacts", None, started_at=datetime.now(UTC))
    print("held", flush=True)
    while True:
        time.sleep(1)
    """
)


def test_a_run_killed_with_sigkill_frees_the_sync_and_is_marked_abandoned(db):
    if db.dialect == "duckdb":
        pytest.skip("a DuckDB file admits one process at a time: a second cannot even open it")
    url = db.warehouse.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, db.schema or ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = holder.stdout.readline() if holder.stdout else b""
        assert line.strip() == b"held", holder.stderr.read() if holder.stderr else b""
        leases = _leases(db)
        with pytest.raises(LeaseHeldError, match="killed-run"):
            leases.acquire("contacts", "next-run", wait_s=0)
        holder.kill()
        holder.wait(timeout=60)
        # SQLite: the holder's process is gone from this machine; PostgreSQL: the server
        # freed the lock with the session. Neither waits for the expiry (60 s).
        with leases.acquire("contacts", "next-run", wait_s=120):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=60)
        for pipe in (holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()
    runs = {r["run_id"]: r for r in StateStore(db.warehouse).run_summaries("contacts")}
    assert runs["killed-run"]["status"] == ABANDONED


def test_a_run_that_lost_its_lease_stops_sending_and_writes_no_state(db):
    leases = _leases(db)
    store = StateStore(db.warehouse)
    lease = leases.acquire("contacts", "run-1")
    try:
        store.record_results("run-1", "contacts", None, [_result("1")], fence=lease.fence)
        if db.warehouse.sql_dialect.advisory_locks:
            # The lock's session dies (a network cut, a server restart, a DBA).
            with db.warehouse.engine.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lease._session})
        else:
            # The run stalled past its expiry.
            t = store.tables.leases
            with db.warehouse.engine.begin() as conn:
                past = datetime.now(UTC) - timedelta(seconds=1)
                conn.execute(update(t).values(expires_at=past, host_id="elsewhere"))
        taker = leases.acquire("contacts", "run-2", wait_s=120)
        with pytest.raises(LeaseLostError, match="run-1 stopped sending"):
            store.record_results("run-1", "contacts", None, [_result("2")], fence=lease.fence)
        with pytest.raises(LeaseLostError):
            lease.check()
        taker.release()
    finally:
        lease.release()
    state = store.load_state("contacts", ["1", "2"])
    assert set(state) == {"1"}  # the flush after the loss wrote nothing
    assert not [r for r in store.audit_rows(sync="contacts") if r["source_key"] == "2"]


def test_the_postgresql_lease_session_drops_a_lost_client_within_the_ttl(db):
    """A lost machine closes no socket: the server's own keepalive must find it, in seconds."""
    if db.dialect != "postgresql":
        pytest.skip("advisory-lock sessions exist on PostgreSQL only")
    leases = _leases(db)
    with leases.acquire("contacts", "run-1", ttl_s=60) as lease:
        conn = lease._conn
        assert conn is not None
        shown = {
            name: conn.exec_driver_sql(f"SHOW {name}").scalar_one()
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
    # 15 s idle + 3 probes 5 s apart: a vanished client is dropped ~30 s later, lock and all.
    assert shown == {
        "tcp_keepalives_idle": "15",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }
