"""Two real ``kizen-sync run`` processes on one sync at once, the source changing in between.

What can go wrong without one run per sync at a time: both runs plan the same records from
the same state and both send them; if the source changed between their plans, the older
run's PATCH can land after the newer one while the newer fingerprint is stored, and that
record keeps a stale value no later run repairs (its state says it is in step).

Each scenario runs two CLI processes, A and B, against the emulator over real HTTP, each
through its own *gate* (an ASGI wrapper in front of the emulator): A's gate holds A's write
requests, B's gate holds the answers to B's writes (B's writes are applied, B just does not
hear back). That is the interleaving that loses an update: B's PATCH applied, then A's
(older) PATCH applied, then A records its state, then B records its (newer) state. The
moment at which the source changes and B starts is one of :data:`MOMENTS`; every wait is on
something observable (a held request, a line a process printed, a process exit), never a
sleep. Afterwards:

- **stale values**: records whose Kizen values differ from the source although the
  connector's state says they are in step (no diff finds them, so no run would repair them).
  Must be 0.
- after one more run, Kizen must equal the source (:func:`compare`), with nothing lost,
  duplicated or left live.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml

from kizen_sync.client import ClientSettings
from kizen_sync.config import parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import StateStoreError
from kizen_sync.models import AttemptRecord, Operation, Outcome, PlannedOp, RecordResult
from kizen_sync.warehouse import ChangeDetector, StateStore, Warehouse
from tests.support.crash_loop import _reap, cli_command
from tests.support.journal import WRITE_METHODS
from tests.support.people import (
    SYNC,
    TABLE,
    initial_rows,
    mutate,
    project_dict,
    sync_spec,
    write_rows,
)
from tests.support.verdict import Verdict, compare

__all__ = ["MOMENTS", "Gate", "OverlapResult", "flush_deadlocks", "overlap_run"]

#: When the source changes and the second run starts, relative to the first run:
#: ``start`` right after it was launched (either may take the sync first); ``apply`` while
#: its first writes are held at its gate (it holds the sync and is sending); ``after`` once it
#: has finished; ``killed``: as ``apply``, then the first run is killed with SIGKILL (its held
#: writes are lost in flight) and the second must take the sync over.
MOMENTS = ("start", "apply", "after", "killed")


class Gate:
    """ASGI wrapper that can hold write requests (``hold="requests"``) or the answers to
    writes (``hold="responses"``) until :meth:`open` is called.
    """

    def __init__(self, app: Any, hold: str) -> None:
        self.app = app
        self.hold = hold
        self._open = threading.Event()
        self._dropped = threading.Event()
        self._lock = threading.Lock()
        self.held = 0  # writes waiting at the gate now
        self.seen = 0  # writes that reached the gate

    def open(self) -> None:
        """Let everything through from now on."""
        self._open.set()

    def drop(self) -> None:
        """Lose every held request (and any later one) in flight: it never reaches Kizen."""
        self._dropped.set()

    async def _wait(self) -> bool:
        """Wait at the gate; False when the request is dropped instead."""
        with self._lock:
            self.held += 1
        try:
            while not self._open.is_set():
                if self._dropped.is_set():
                    return False
                await asyncio.sleep(0.005)
            return True
        finally:
            with self._lock:
                self.held -= 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass through, holding writes to records as configured."""
        write = (
            scope["type"] == "http"
            and scope["method"] in WRITE_METHODS
            and scope.get("path", "").startswith("/api/records/")
        )
        if not write:
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.seen += 1
        if self.hold == "requests":
            if await self._wait():
                await self.app(scope, receive, send)
                return
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return

        async def held_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await self._wait()
            await send(message)

        await self.app(scope, receive, held_send)


@contextmanager
def _serve_gates(emu: Emulator, *gates: Gate) -> Iterator[tuple[str, list[str]]]:
    """Serve the emulator directly and through each gate; yield (direct URL, gate URLs)."""
    inner = emu.app
    with ExitStack() as stack:
        direct = stack.enter_context(emu.serve(host="127.0.0.1", port=0))
        urls = []
        for gate in gates:
            emu.app = gate  # type: ignore[assignment]  # serve() hands self.app to uvicorn
            try:
                urls.append(stack.enter_context(emu.serve(host="127.0.0.1", port=0)))
            finally:
                emu.app = inner
        yield direct, urls


@dataclass
class OverlapResult:
    """One scenario: what the two processes did and what Kizen held afterwards."""

    warehouse: str
    moment: str
    wait: bool
    rows: int
    changes: int = 0
    exits: dict[str, int | None] = field(default_factory=dict)
    waited: list[str] = field(default_factory=list)  # processes that printed a lease wait
    abandoned: list[str] = field(default_factory=list)  # runs the runs table marks abandoned
    stale: list[str] = field(default_factory=list)  # e-mails: Kizen differs, state "in step"
    after: Verdict = field(default_factory=Verdict)  # after one more run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No stale value, every exit status expected (0, or 3 for "another run holds the
        sync" when not waiting), and Kizen equal to the source after one more run.
        """
        allowed = {0} if self.wait else {0, 3}
        killed = self.moment == "killed"
        return (
            not self.stale
            and all(
                code in allowed or (killed and name == "a" and code == -9)
                for name, code in self.exits.items()
            )
            and self.after.ok
            and len(self.abandoned) == killed
        )


def _wait_for(done: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _printed(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except OSError:
        return False


def overlap_run(
    workdir: Path,
    *,
    warehouse_url: str,
    moment: str,
    wait: bool = True,
    state_schema: str | None = None,
    rows: int = 60,
    seed: int = 7,
    cli_wait: bool = True,
) -> OverlapResult:
    """Run two processes of one sync at ``moment`` (see :data:`MOMENTS`).

    ``wait``: both runs are started with ``--wait`` (the second waits for the first); else
    the one that finds the sync held exits 3 and a third run does its work. ``cli_wait``:
    pass ``--wait`` at all (off only to reproduce the problem on a build without leases).
    """
    if moment not in MOMENTS:
        raise ValueError(f"moment must be one of {MOMENTS}")
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    started = time.monotonic()
    table = f"{state_schema}.{TABLE}" if state_schema else TABLE
    result = OverlapResult(
        warehouse_url.split(":", 1)[0].split("+")[0], moment, wait, rows, changes=rows
    )
    emu = Emulator.demo()
    gate_a = Gate(emu.app, hold="requests")
    gate_b = Gate(emu.app, hold="responses")
    if moment == "after":
        gate_a.open()
    warehouse = Warehouse(warehouse_url, state_schema=state_schema)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    files: list[IO[bytes]] = []
    try:
        with _serve_gates(emu, gate_a, gate_b) as (direct, (url_a, url_b)):
            key, user, business = emu.credentials
            data = project_dict(warehouse_url, direct, emu, max_in_flight=4)
            data["warehouse"]["state_schema"] = state_schema
            data["syncs"] = [sync_spec(table=table)]
            project = parse_config(data)
            configs = {}
            for name, url in (("a", url_a), ("b", url_b)):
                spec = dict(data, kizen=dict(data["kizen"], base_url=url))
                configs[name] = workdir / f"sync-{name}.yaml"
                configs[name].write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
            settings = ClientSettings(
                base_url=direct, api_key=key, user_id=user, business_id=business
            )
            source = initial_rows(rng, rows)
            write_rows(warehouse.engine, source, table)
            with SyncRunner(project, client_settings=settings, warehouse=warehouse) as runner:
                runner.run(SYNC)
            deleted: set[str] = set()
            next_id = rows + 1

            def change_source(version: str) -> None:
                """Mixed changes, and a new first name for every row: each record the first
                run writes, the second writes too, with other values.
                """
                nonlocal source, next_id
                source, mix, gone = mutate(source, rng, max(4, rows // 2), next_id)
                deleted.update(gone)
                next_id += mix.creates
                source = {i: (r[0], r[1], f"{version}-{i}", r[3], r[4]) for i, r in source.items()}
                result.changes += len(source) + len(gone)
                write_rows(warehouse.engine, source, table)

            env = {**os.environ, "KIZEN_API_KEY": key, "COLUMNS": "200"}
            env.pop("KIZEN_BASE_URL", None)

            def start(name: str) -> None:
                logs[name] = workdir / f"run-{name}.log"
                log = logs[name].open("wb")
                files.append(log)
                command = [*cli_command(), "run", "--config", str(configs[name])]
                if cli_wait and wait:
                    command += ["--wait", "600"]
                procs[name] = subprocess.Popen(command, env=env, stdout=log, stderr=log)

            def exited(name: str) -> bool:
                return procs[name].poll() is not None

            def waiting(name: str) -> bool:
                return _printed(logs[name], "waiting up to")

            change_source("A")  # what A will send
            start("a")
            if moment in ("apply", "killed"):
                _wait_for(lambda: gate_a.held > 0 or exited("a"), "A's first held write")
            elif moment == "after":
                _wait_for(lambda: exited("a"), "A to finish")
            change_source("B")  # what B will send: newer than A's
            start("b")
            # B waits for the sync, stops (exit 3), or has writes applied (answers held).
            _wait_for(
                lambda: waiting("b") or exited("b") or gate_b.held > 0 or waiting("a"),
                "B to wait, stop or send",
            )
            if moment == "killed":
                _reap(procs["a"])  # SIGKILL while its writes are in flight
                gate_a.drop()
            else:
                gate_a.open()
                _wait_for(lambda: exited("a") or waiting("a"), "A to finish or wait")
            gate_b.open()
            for name in ("a", "b"):
                result.exits[name] = procs[name].wait(timeout=300)
            result.waited = [n for n in ("a", "b") if waiting(n)]
            result.stale = _stale(emu, project, warehouse, source, deleted)
            with SyncRunner(project, client_settings=settings, warehouse=warehouse) as runner:
                runner.run(SYNC)
                runs = runner.run_summaries(SYNC)
            result.abandoned = [r["run_id"] for r in runs if r["status"] == "abandoned"]
            result.after = compare(emu, project.syncs[0], source, deleted)
    finally:
        for proc in procs.values():
            _reap(proc)
        for log in files:
            log.close()
        warehouse.dispose()
        emu.close()
    result.seconds = time.monotonic() - started
    return result


def _stale(
    emu: Emulator,
    project: Any,
    warehouse: Warehouse,
    source: dict[int, Any],
    deleted: set[str],
) -> list[str]:
    """E-mails whose Kizen values differ from the source while no diff would find them."""
    sync = project.syncs[0]
    verdict = compare(emu, sync, source, deleted)
    differing = set(verdict.lost + verdict.missing + verdict.not_archived)
    pending: set[str] = set()
    for chunk in ChangeDetector(warehouse, sync).iter_changes():
        for change in chunk:
            pending.add(change.source_key)
    emails = {str(row[0]): row[1] for row in source.values()}
    emails.update({e.split("@", 1)[0].removeprefix("r"): e for e in deleted})
    waiting_keys = {emails.get(k, "") for k in pending}
    return sorted(differing - waiting_keys)


def flush_deadlocks(warehouse: Warehouse, *, rounds: int = 5, keys: int = 2000) -> int:
    """Two flushes of the same ``keys`` state rows in opposite orders, ``rounds`` times, each
    pair started together (a barrier); returns how many failed (PostgreSQL: "deadlock
    detected" when rows were locked in each batch's own order).
    """
    store = StateStore(warehouse)
    store.ensure_schema()
    names = [f"{i:05d}" for i in range(keys)]
    failed: list[BaseException] = []
    now = datetime.now(UTC)

    def batch(order: list[str], tag: str) -> list[RecordResult]:
        return [
            RecordResult(
                PlannedOp(Operation.UPDATE, k, kizen_id=f"id-{k}", fingerprint=tag),
                Outcome.SUCCESS,
                f"id-{k}",
                (AttemptRecord(1, Outcome.SUCCESS, now, now, http_status=200),),
            )
            for k in order
        ]

    for round_no in range(rounds):
        start = threading.Barrier(2)

        def flush(
            results: list[RecordResult], run_id: str, start: threading.Barrier = start
        ) -> None:
            start.wait()
            try:
                store.record_results(run_id, "deadlock", None, results)
            except StateStoreError as exc:
                failed.append(exc)

        threads = [
            threading.Thread(target=flush, args=(batch(names, "a"), f"a{round_no}")),
            threading.Thread(target=flush, args=(batch(names[::-1], "b"), f"b{round_no}")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return len(failed)
