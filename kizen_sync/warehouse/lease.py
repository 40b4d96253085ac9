"""One run per sync at a time, enforced in the warehouse.

Runs of one sync start from many places: a schedule, a backfill, someone pressing Materialize
twice, a CLI on another machine. The one thing they all share is the warehouse that holds
the sync's state, so that is where the lease lives. Without it two runs plan the same records
from the same state and both send them; worse, the older run's PATCH can land after the
newer one while the newer fingerprint is stored, and that record keeps a stale value that no
later run repairs (its state says it is in step).

Two mechanisms, picked by the dialect (:attr:`~.dialects.base.Dialect.advisory_locks`):

- **advisory** (PostgreSQL): a session-level advisory lock on a connection the run keeps for
  itself. The server frees it when the session ends, so a killed run never blocks the next.
- **row** (SQLite, and any warehouse without advisory locks, e.g. Redshift): the sync's row
  in ``{prefix}leases``, taken by compare-and-swap on its ``version``, renewed by a
  heartbeat, expiring ``ttl_s`` after the last one. Times come from the database's clock
  (:meth:`~.dialects.base.Dialect.current_time`), so machines never compare their own
  clocks. A holder whose process is gone from this same machine (same boot and PID
  namespace, its pid absent or reused) is taken over at once instead of at expiry.

Either way the row names the holder (run id, host, pid, since, last heartbeat), which is
what the waiting run's :class:`~kizen_sync.errors.LeaseHeldError` tells the user, and taking
the lease marks every run of the sync still ``running`` as ``abandoned``: holding the lease,
we know none of them is.

A run that loses its lease (its process stalled past the expiry, its lock connection died)
must stop writing, or it could overwrite the run that took over. :meth:`Lease.check` is asked
before every request (no confirmed renewal for ``ttl_s / 2`` counts as lost), and
:meth:`Lease.fence` inside every state flush's transaction (it renews the row, or checks the
lock in ``pg_locks``): the state of a run without the lease is never written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy import exc as sa_exc

from kizen_sync.errors import LeaseHeldError, LeaseLostError, StateStoreError
from kizen_sync.warehouse.audit import MESSAGE_LIMIT, utc
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.tables import StateTables

__all__ = ["ABANDONED", "DEFAULT_TTL_S", "Lease", "LeaseHolder", "Leases", "Process"]

logger = logging.getLogger("kizen_sync.lease")

#: Status of a run found ``running`` by the next holder of its sync's lease.
ABANDONED = "abandoned"
#: A lease not renewed for this long belongs to a dead run.
DEFAULT_TTL_S = 60.0
#: How often a waiting run asks again.
POLL_S = 0.25


# --- who holds a lease --------------------------------------------------------------------


def _proc_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (None: no such process,
    or no ``/proc``). With the pid it names one process, even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) is in parentheses and may contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _host_id() -> str | None:
    """The machine's boot id and the PID namespace: equal values make pids comparable."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{namespace}"


@dataclass(frozen=True)
class Process:
    """A process that may hold leases."""

    owner: str  # shown to people: "host pid 1234"
    host_id: str | None
    pid: int
    pid_start: int | None

    @classmethod
    def current(cls) -> Process:
        """The process running this code."""
        pid = os.getpid()
        return cls(f"{socket.gethostname()} pid {pid}", _host_id(), pid, _proc_start(pid))


@dataclass(frozen=True)
class LeaseHolder:
    """The lease row of a sync, as read."""

    sync_name: str
    run_id: str | None
    owner: str | None
    host_id: str | None
    pid: int | None
    pid_start: int | None
    acquired_at: datetime | None
    heartbeat_at: datetime | None
    expires_at: datetime | None
    version: int

    @classmethod
    def from_row(cls, row: Any) -> LeaseHolder:
        """From a mapping row of the leases table."""

        def when(name: str) -> datetime | None:
            value = row[name]
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            return utc(value) if value is not None else None

        return cls(
            sync_name=row["sync_name"],
            run_id=row["run_id"],
            owner=row["owner"],
            host_id=row["host_id"],
            pid=row["pid"],
            pid_start=row["pid_start"],
            acquired_at=when("acquired_at"),
            heartbeat_at=when("heartbeat_at"),
            expires_at=when("expires_at"),
            version=int(row["version"] or 0),
        )

    def process_gone(self, me: Process) -> bool:
        """The holder ran on this machine and its process no longer exists."""
        if self.pid is None or self.host_id is None or self.host_id != me.host_id:
            return False
        start = _proc_start(self.pid)
        return start is None or (self.pid_start is not None and start != self.pid_start)

    def describe(self) -> str:
        """``run X (host pid N) since ...``, for messages."""
        since = f" since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if self.acquired_at else ""
        who = f" ({self.owner})" if self.owner else ""
        return f"run {self.run_id}{who}{since}"


def lock_key(warehouse: Warehouse, sync_name: str) -> int:
    """The advisory-lock id of a sync: a signed 64-bit hash of where its state lives and its
    name, so that two deployments (state schemas, table prefixes) never share a lock.
    """
    text = f"kizen-sync lease|{warehouse.state_schema or ''}|{warehouse.table_prefix}|{sync_name}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# --- a held lease ---------------------------------------------------------------------------


class Lease:
    """The lease one run holds on its sync, renewed by a thread until :meth:`release`.

    Built by :meth:`Leases.acquire`; a context manager that releases on exit.
    """

    def __init__(
        self,
        leases: Leases,
        sync_name: str,
        run_id: str,
        ttl_s: float,
        *,
        conn: Connection | None = None,
        session: Any = None,
        key: int | None = None,
        previous: LeaseHolder | None = None,
    ) -> None:
        self.leases = leases
        self.sync_name = sync_name
        self.run_id = run_id
        self.ttl_s = ttl_s
        #: The lease row as it was before this run took it (a dead holder, or None).
        self.previous = previous
        self._conn = conn  # advisory: the connection whose session holds the lock
        self._session = session
        self._key = key
        self._lock = threading.Lock()  # the dedicated connection is not thread-safe
        self._confirmed = time.monotonic()
        self._lost: str | None = None
        self._released = False
        self._stop = threading.Event()
        interval = ttl_s / 4 if conn is None else min(ttl_s / 4, 5.0)
        self._thread = threading.Thread(
            target=self._renew_loop,
            args=(interval,),
            name=f"kizen-sync-lease-{sync_name}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def advisory(self) -> bool:
        """Held as an advisory lock (else as a lease row)."""
        return self._conn is not None

    def check(self) -> None:
        """Raise when this run may no longer send (asked before every request).

        Raises:
            LeaseLostError: the lease was lost, or not confirmed for ``ttl_s / 2`` (another
                run may take it over at ``ttl_s``).
        """
        silent = time.monotonic() - self._confirmed
        if self._lost is None and silent > self.ttl_s / 2:
            self._lost = f"its lease was not renewed for {silent:.0f} s"
        if self._lost is not None:
            raise self._lost_error()

    def fence(self, conn: Connection) -> None:
        """Inside a state flush's transaction: make sure this run still holds the lease.

        The row lease is renewed by an UPDATE of this run's row, which a run taking over
        cannot pass until this transaction ends (and then sees a fresh heartbeat); the
        advisory lock is looked up in ``pg_locks`` for the lease's own session.

        Raises:
            LeaseLostError: the state of this flush must not be written.
        """
        self.check()
        dialect = self.leases.warehouse.sql_dialect
        if self.advisory:
            held = dialect.holds_advisory_lock(conn, self._session, self._key or 0)
        else:
            held = self.leases.renew_row(conn, self.sync_name, self.run_id, self.ttl_s)
        if not held:
            self._lost = "another run took its lease over"
            raise self._lost_error()
        self._confirmed = time.monotonic()

    def release(self) -> None:
        """Stop renewing and give the lease back (idempotent)."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.leases.drop_row(self.sync_name, self.run_id)
        except (sa_exc.SQLAlchemyError, StateStoreError) as exc:
            logger.warning("sync %s: could not clear its lease row: %s", self.sync_name, exc)
        if self._conn is not None:
            with self._lock:
                self._unlock(self._conn)

    def _unlock(self, conn: Connection) -> None:
        """Release the advisory lock before the next run may ask for it.

        Unlocked explicitly: a closed socket frees it too, but only once the server has
        noticed, which a run started right after this one could beat. A connection whose
        unlock failed is discarded, never handed back to the pool still holding the lock.
        """
        try:
            self.leases.warehouse.sql_dialect.advisory_unlock(conn, self._key or 0)
            conn.commit()
        except sa_exc.SQLAlchemyError:
            conn.invalidate()
        finally:
            conn.close()

    def _lost_error(self) -> LeaseLostError:
        return LeaseLostError(
            f"sync {self.sync_name}: run {self.run_id} stopped sending because {self._lost}; "
            "another run may now hold the sync. Records confirmed so far are kept; the "
            "others are planned again by the next run.",
            sync=self.sync_name,
            run_id=self.run_id,
        )

    def _renew_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if self.advisory:
                    ok = self._renew_advisory()
                else:
                    with self.leases.warehouse.engine.begin() as conn:
                        ok = self.leases.renew_row(conn, self.sync_name, self.run_id, self.ttl_s)
            except sa_exc.SQLAlchemyError as exc:
                # A failed renewal is not a lost lease yet: check() decides by the time
                # since the last confirmed one.
                logger.warning("sync %s: lease renewal failed: %s", self.sync_name, exc)
                continue
            if not ok:
                self._lost = "another run took its lease over"
                return
            self._confirmed = time.monotonic()

    def _renew_advisory(self) -> bool:
        assert self._conn is not None
        with self._lock:
            conn = self._conn
            if conn.closed:
                return False
            dialect = self.leases.warehouse.sql_dialect
            held = dialect.holds_advisory_lock(conn, self._session, self._key or 0)
            if held:  # informational: the heartbeat a waiting run shows
                self.leases.renew_row(conn, self.sync_name, self.run_id, self.ttl_s)
            conn.commit()
            return held


# --- taking leases ---------------------------------------------------------------------------


class Leases:
    """Takes and inspects the run leases of one warehouse's syncs.

    Args:
        warehouse: where the sync state (and so the leases) live.
        tables: the connector's tables there (``leases`` and ``runs`` are used).
    """

    def __init__(self, warehouse: Warehouse, tables: StateTables) -> None:
        self.warehouse = warehouse
        self.tables = tables
        self.process = Process.current()

    def holder(self, sync_name: str) -> LeaseHolder | None:
        """The lease row of ``sync_name`` (None when no run ever held it or it was released)."""
        t = self.tables.leases
        with self.warehouse.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.sync_name == sync_name)).mappings().first()
        return LeaseHolder.from_row(row) if row is not None else None

    def acquire(
        self, sync_name: str, run_id: str, *, wait_s: float = 0.0, ttl_s: float = DEFAULT_TTL_S
    ) -> Lease:
        """Take the lease of ``sync_name`` for ``run_id``, waiting up to ``wait_s`` seconds.

        On success every other run of the sync still marked ``running`` is marked
        ``abandoned`` (none can be running while we hold the lease).

        Raises:
            LeaseHeldError: another run held it for the whole wait; names that run.
            StateStoreError: the leases table cannot be read or written.
        """
        started = time.monotonic()
        deadline = started + max(0.0, wait_s)
        told = False
        while True:
            try:
                lease, holder = (
                    self._try_advisory(sync_name, run_id, ttl_s)
                    if self.warehouse.sql_dialect.advisory_locks
                    else self._try_row(sync_name, run_id, ttl_s)
                )
            except sa_exc.DBAPIError as exc:
                raise StateStoreError(
                    f"sync {sync_name}: cannot take the run lease in "
                    f"{self.warehouse.describe()}: {self.warehouse.safe_message(exc)}",
                    sync=sync_name,
                ) from None
            if lease is not None:
                self._abandon_others(sync_name, run_id)
                return lease
            now = time.monotonic()
            if now >= deadline:
                raise self._held_error(sync_name, holder, now - started, ttl_s)
            if not told:
                told = True
                logger.warning(
                    "sync %s: waiting up to %.0f s for %s to finish",
                    sync_name,
                    deadline - now,
                    holder.describe() if holder is not None else "another run",
                )
            time.sleep(min(POLL_S, deadline - now))

    # --- the row lease --------------------------------------------------------------------

    def _claim_values(self, now: datetime, run_id: str, ttl_s: float) -> dict[str, Any]:
        me = self.process
        return {
            "run_id": run_id,
            "owner": me.owner,
            "host_id": me.host_id,
            "pid": me.pid,
            "pid_start": me.pid_start,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }

    def _try_row(
        self, sync_name: str, run_id: str, ttl_s: float
    ) -> tuple[Lease | None, LeaseHolder | None]:
        """One compare-and-swap attempt; (lease, previous holder) or (None, current holder)."""
        t = self.tables.leases
        dialect = self.warehouse.sql_dialect
        with self.warehouse.engine.begin() as conn:
            now = dialect.current_time(conn)
            row = conn.execute(select(t).where(t.c.sync_name == sync_name)).mappings().first()
        values = self._claim_values(now, run_id, ttl_s)
        if row is None:
            try:
                with self.warehouse.engine.begin() as conn:
                    conn.execute(insert(t).values(sync_name=sync_name, version=1, **values))
            except sa_exc.IntegrityError:
                return None, None  # another run inserted it first: read it again
            if not dialect.enforces_primary_keys and not self._kept_insert(sync_name, run_id):
                return None, None  # another run inserted one too, and its claim came first
            return Lease(self, sync_name, run_id, ttl_s), None
        holder = LeaseHolder.from_row(row)
        free = (
            holder.run_id is None
            or holder.run_id == run_id
            or (holder.expires_at is not None and holder.expires_at <= now)
            or holder.process_gone(self.process)
        )
        if not free:
            return None, holder
        with self.warehouse.engine.begin() as conn:
            taken = conn.execute(
                update(t)
                .where(t.c.sync_name == sync_name, t.c.version == holder.version)
                .values(version=holder.version + 1, **values)
            ).rowcount
        if taken != 1:
            return None, holder  # another run swapped it first
        previous = holder if holder.run_id not in (None, run_id) else None
        return Lease(self, sync_name, run_id, ttl_s, previous=previous), None

    def _kept_insert(self, sync_name: str, run_id: str) -> bool:
        """Where the primary key is not enforced (Snowflake, BigQuery, Redshift), two runs
        may both insert the sync's row: the earliest claim (then the smallest run id) keeps
        it, any other run deletes its own row and waits. Both decide from the same rows, so
        at most one holds the lease, unless a second insert lands after the first run read
        the rows (a window of one round trip), which the next renewal's exact row count
        would not catch: keep ``wait_s`` retries spaced on such warehouses.
        """
        t = self.tables.leases
        with self.warehouse.engine.begin() as conn:
            rows = conn.execute(
                select(t.c.run_id)
                .where(t.c.sync_name == sync_name)
                .order_by(t.c.acquired_at, t.c.run_id)
            ).all()
            if rows and rows[0][0] == run_id:
                return True
            conn.execute(delete(t).where(t.c.sync_name == sync_name, t.c.run_id == run_id))
        return False

    def renew_row(self, conn: Connection, sync_name: str, run_id: str, ttl_s: float) -> bool:
        """Push the expiry of ``run_id``'s lease row forward; False when it is not its row."""
        t = self.tables.leases
        now = self.warehouse.sql_dialect.current_time(conn)
        renewed = conn.execute(
            update(t)
            .where(t.c.sync_name == sync_name, t.c.run_id == run_id)
            .values(
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
                version=t.c.version + 1,
            )
        ).rowcount
        return renewed == 1

    def drop_row(self, sync_name: str, run_id: str) -> None:
        """Delete the lease row if ``run_id`` still holds it."""
        t = self.tables.leases
        with self.warehouse.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.sync_name == sync_name, t.c.run_id == run_id))

    # --- the advisory lock ----------------------------------------------------------------

    def _try_advisory(
        self, sync_name: str, run_id: str, ttl_s: float
    ) -> tuple[Lease | None, LeaseHolder | None]:
        """Try the advisory lock on a fresh connection kept for the run when it is granted."""
        dialect = self.warehouse.sql_dialect
        key = lock_key(self.warehouse, sync_name)
        t = self.tables.leases
        conn = self.warehouse.engine.connect()
        try:
            dialect.watch_lease_session(conn, ttl_s)
            granted = dialect.try_advisory_lock(conn, key)
            conn.commit()
            if not granted:
                conn.close()
                return None, self.holder(sync_name)
            session = dialect.session_id(conn)
            now = dialect.current_time(conn)
            row = conn.execute(select(t).where(t.c.sync_name == sync_name)).mappings().first()
            previous = LeaseHolder.from_row(row) if row is not None else None
            values = self._claim_values(now, run_id, ttl_s)
            upsert = dialect.upsert(
                t,
                ["sync_name"],
                lambda new: {k: new[k] for k in values} | {"version": t.c.version + 1},
            )
            conn.execute(upsert, [{"sync_name": sync_name, "version": 1, **values}])
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if previous is not None and previous.run_id in (None, run_id):
            previous = None
        return Lease(
            self, sync_name, run_id, ttl_s, conn=conn, session=session, key=key, previous=previous
        ), None

    # --- bookkeeping ----------------------------------------------------------------------

    def _abandon_others(self, sync_name: str, run_id: str) -> None:
        """Mark the sync's other ``running`` runs ``abandoned`` (we hold its lease)."""
        runs = self.tables.runs
        with self.warehouse.engine.begin() as conn:
            now = self.warehouse.sql_dialect.current_time(conn)
            message = (
                "abandoned: the run ended without finishing (its process was killed or lost); "
                f"found by run {run_id} at {now:%Y-%m-%d %H:%M:%S} UTC when it took the lease"
            )
            count = conn.execute(
                update(runs)
                .where(
                    runs.c.sync_name == sync_name,
                    runs.c.status == "running",
                    runs.c.run_id != run_id,
                )
                .values(status=ABANDONED, finished_at=now, message=message[:MESSAGE_LIMIT])
            ).rowcount
        if count:
            logger.warning(
                "sync %s: %d run(s) left running were marked abandoned", sync_name, count
            )

    def _held_error(
        self, sync_name: str, holder: LeaseHolder | None, waited: float, ttl_s: float
    ) -> LeaseHeldError:
        who = holder.describe() if holder is not None else "another run"
        beat = ""
        if holder is not None and holder.heartbeat_at is not None:
            with self.warehouse.engine.connect() as conn:
                now = self.warehouse.sql_dialect.current_time(conn)
            beat = f", last heartbeat {(now - holder.heartbeat_at).total_seconds():.0f} s ago"
        expiry = (
            "its lock is freed as soon as its process ends"
            if self.warehouse.sql_dialect.advisory_locks
            else f"a killed run's lease expires {ttl_s:.0f} s after its last heartbeat"
        )
        return LeaseHeldError(
            f"sync {sync_name}: another run holds the sync: {who}{beat}. This run waited "
            f"{waited:.0f} s and sent nothing. Let that run finish, or wait for it: "
            f"`--wait SECONDS` (or warehouse.lease.wait_s in the sync file); {expiry}.",
            sync=sync_name,
            holder_run_id=holder.run_id if holder else None,
            holder=holder.owner if holder else None,
            since=holder.acquired_at if holder else None,
            waited_s=round(waited, 3),
        )
