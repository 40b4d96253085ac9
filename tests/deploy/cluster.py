"""A kizen-sync Celery deployment on this machine, built the way the README's recipe says.

PostgreSQL instance storage (``deploy/dagster.yaml`` as shipped, in a database of its own),
one gRPC code server per sync file (one Kizen business each), ``dagster-webserver`` and
``dagster-daemon`` on a workspace of those servers, and Celery workers (RabbitMQ broker, Redis
result backend) started with ``deploy/dagster_celery_config.py`` on their path. Kizen is two
emulators served over HTTP by the test process, each behind a :class:`~gate.Gate`.

Every process runs in a session of its own so that a test can SIGKILL a whole worker (main
process and pool children: a lost node) and so that teardown leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import yaml
from gate import Gate
from sqlalchemy import create_engine, text

from kizen_sync.demo import seed_warehouse, write_sync_file
from kizen_sync.emulator import Emulator
from kizen_sync.emulator.emulator import DEMO_API_KEY, DEMO_USER_ID
from tests.support.postgres import owned_database, url_of

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
#: The host part of every worker's node name: a worker's pidbox queue (``w1@host.celery.pidbox``)
#: is exclusive on the broker, so two test sessions sharing one RabbitMQ must not share names.
WORKER_HOST = f"kizen-{os.getpid()}"
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/0"
#: Generous bounds for things that take seconds on a quiet machine; never asserted as speed.
WAIT_S = 420.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = WAIT_S) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail after the bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole session: the process and every child (a lost machine)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Wait for a terminated process (bounded), then kill whatever is left of its session
        (run workers of a code server, a worker's pool children).
        """
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)


@dataclass
class Business:
    """One Kizen business: its emulator, gate, warehouse and sync file (one code location)."""

    name: str
    emulator: Emulator
    gate: Gate
    base_url: str
    warehouse: Path
    sync_file: Path
    queue: str
    business_id: str

    @property
    def pool(self) -> str:
        return f"kizen_api/{self.business_id}"

    @property
    def location(self) -> str:
        return f"kizen_{self.name}"

    def sql(self, statement: str, **params: Any) -> None:
        engine = create_engine(f"sqlite:///{self.warehouse}")
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), params)
        finally:
            engine.dispose()

    def rows(self, query: str) -> list[dict[str, Any]]:
        engine = create_engine(f"sqlite:///{self.warehouse}")
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(text(query))]
        finally:
            engine.dispose()


@dataclass
class Cluster:
    home: Path
    workdir: Path
    env: dict[str, str]
    businesses: dict[str, Business]
    webserver_port: int
    processes: dict[str, Process] = field(default_factory=dict)
    _instance: dg.DagsterInstance | None = None

    # --- processes ------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def business_env(self, business: Business) -> dict[str, str]:
        """What the README says every process of one sync file needs."""
        return self.env | {
            "KIZEN_SYNC_CONFIG": str(business.sync_file),
            "KIZEN_API_KEY": DEMO_API_KEY,
        }

    def start_worker(self, name: str, business: Business) -> Process:
        env = self.business_env(business) | {"PYTHONPATH": str(ROOT / "deploy")}
        argv = [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", business.queue]
        argv += ["-c", "1", "-n", f"{name}@{WORKER_HOST}", "-l", "info", "--without-mingle"]
        argv += ["--without-gossip"]
        process = self.start(name, argv, env)
        wait_for(f"worker {name} ready", lambda: " ready." in process.tail(20000) or None)
        return process

    def describe(self) -> str:
        """Recent runs and the end of every process's log, for a failure message."""
        runs = [
            f"{r.run_id[:8]} {r.job_name} {r.status.value} {dict(r.tags)}"
            for r in (self.instance.get_runs(limit=12) if self._instance else [])
        ]
        logs = [f"--- {p.name}\n{p.tail(1500)}" for p in self.processes.values()]
        return "\n".join(["runs:", *runs, *logs])

    def wait(self, what: str, probe: Callable[[], T | None]) -> T:
        """:func:`wait_for`, failing with the deployment's state in the message."""
        try:
            return wait_for(what, probe)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.describe()}") from None

    # --- Dagster ----------------------------------------------------------------------------

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(str(self.home))
        return self._instance

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.webserver_port}/graphql"
        response = httpx.post(url, json={"query": query, "variables": variables}, timeout=120)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"])

    def launch(self, business: Business, job: str) -> str:
        """Launch a job as the UI's Launch button does; the daemon dequeues it."""
        data = self.graphql(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": business.location,
                        "repositoryName": "__repository__",
                        "jobName": job,
                    },
                    "runConfigData": {},
                }
            },
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return str(data["run"]["runId"])

    def backfill(self, asset: str, partitions: list[str]) -> str:
        """Launch a backfill as the asset page's Materialize dialog does."""
        data = self.graphql(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "assetSelection": [{"path": asset.split("/")}],
                    "partitionNames": partitions,
                }
            },
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return str(data["backfillId"])

    def run(self, run_id: str) -> dg.DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run

    def wait_finished(self, run_id: str) -> dg.DagsterRun:
        """The run once it has ended; a failed run's automatic retry, once that has ended."""

        def finished() -> dg.DagsterRun | None:
            run = self.run(run_id)
            return run if run.is_finished else None

        run = self.wait(f"run {run_id} to end", finished)
        if run.status == dg.DagsterRunStatus.SUCCESS:
            return run
        retry = self.wait(
            f"a retry of run {run_id}",
            lambda: next(
                iter(self.instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))),
                None,
            ),
        )
        return self.wait_finished(retry.run_id)

    def backfill_runs(self, backfill_id: str) -> list[dg.DagsterRun]:
        def done() -> list[dg.DagsterRun] | None:
            backfill = self.instance.get_backfill(backfill_id)
            assert backfill is not None
            if backfill.status.value in ("REQUESTED",):
                return None
            runs = self.instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            return runs if runs and all(r.is_finished for r in runs) else None

        return self.wait(f"backfill {backfill_id}", done)

    def messages(self, run_id: str) -> list[dg.EventLogEntry]:
        return list(self.instance.all_logs(run_id))

    def celery_workers(self, run_id: str) -> dict[str, str]:
        """Step key -> Celery worker hostname, from the run's log (last attempt wins)."""
        return dict(self.step_attempts(run_id))

    def step_attempts(self, run_id: str) -> list[tuple[str, str]]:
        """(step key, Celery worker hostname) for every time a worker started a step."""
        attempts = []
        for entry in self.messages(run_id):
            event = entry.dagster_event
            if event is None or event.event_type != dg.DagsterEventType.ENGINE_EVENT:
                continue
            metadata = event.engine_event_data.metadata if event.engine_event_data else {}
            if "Celery worker" in metadata and event.step_key:
                attempts.append((event.step_key, str(metadata["Celery worker"].value)))
        return attempts

    def active_slots(self, pool: str) -> int:
        return self.instance.event_log_storage.get_concurrency_info(pool).active_slot_count

    def runs_table(self, business: Business, sync: str) -> list[dict[str, Any]]:
        return business.rows(
            f"SELECT run_id, status, message FROM kizen_sync_runs WHERE sync_name = '{sync}'"
        )


LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
  }
}
"""


def _business(workdir: Path, name: str, business_id: str, prefix: str) -> tuple[Business, Any]:
    emulator = Emulator.demo(api_key=DEMO_API_KEY, user_id=DEMO_USER_ID, business_id=business_id)
    gate = Gate(emulator.app)
    emulator.app = gate
    serving = emulator.serve(host="127.0.0.1", port=0)
    base_url = serving.__enter__()
    folder = workdir / name
    folder.mkdir()
    warehouse = folder / "warehouse.db"
    seed_warehouse(warehouse)
    path = write_sync_file(folder, warehouse)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    queue = f"{prefix}_{name}"
    data["kizen"] |= {"base_url": base_url, "business_id": business_id, "user_id": DEMO_USER_ID}
    # The README's recipe: Celery, one queue per sync file (its workers load that file).
    data["executor"] = {
        "type": "celery",
        "config": {"config_source": {"task_default_queue": queue}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    business = Business(name, emulator, gate, base_url, warehouse, path, queue, business_id)
    return business, serving


@contextlib.contextmanager
def celery_cluster(workdir: Path) -> Iterator[Cluster]:
    """Two businesses (a: two workers, b: one), code servers, webserver and daemon, on a
    PostgreSQL database of their own (dropped afterwards, or swept if the run is killed).
    """
    with owned_database("celery") as database:
        yield from _cluster(workdir, database)


def _cluster(workdir: Path, database: str) -> Iterator[Cluster]:
    prefix = f"kizen_test_{os.getpid()}"
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    (workdir / "compute_logs").mkdir()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("KIZEN_", "DAGSTER_"))}
    base_env.pop("CELERY_BROKER_URL", None)
    base_env.pop("CELERY_RESULT_BACKEND", None)
    env = base_env | {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": url_of(database, driver="psycopg2"),
        "DAGSTER_COMPUTE_LOG_DIR": str(workdir / "compute_logs"),
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BACKEND,
    }
    servings = []
    businesses = {}
    for name in ("a", "b"):
        business, serving = _business(workdir, name, str(uuid.uuid4()), prefix)
        businesses[name] = business
        servings.append(serving)
    cluster = Cluster(home, workdir, env, businesses, free_port())
    saved = {k: os.environ.get(k) for k in ("DAGSTER_PG_URL", "DAGSTER_COMPUTE_LOG_DIR")}
    os.environ.update({k: env[k] for k in saved})
    try:
        ports = {}
        for business in businesses.values():
            port = ports[business.name] = free_port()
            argv = [str(BIN / "dagster"), "api", "grpc", "-m", "dagster_project.definitions"]
            argv += ["-h", "127.0.0.1", "-p", str(port), "--location-name", business.location]
            cluster.start(f"code-{business.name}", argv, cluster.business_env(business))
        workspace = workdir / "workspace.yaml"
        entries = [
            {"grpc_server": {"host": "127.0.0.1", "port": ports[b], "location_name": f"kizen_{b}"}}
            for b in ports
        ]
        workspace.write_text(yaml.safe_dump({"load_from": entries}), encoding="utf-8")
        for name, port in ports.items():
            wait_for(f"code server {name}", lambda port=port: listening(port))
        cluster.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env)
        argv = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1"]
        cluster.start("webserver", [*argv, "-p", str(cluster.webserver_port)], env)
        cluster.start_worker("w1", businesses["a"])
        cluster.start_worker("w2", businesses["a"])
        cluster.start_worker("w3", businesses["b"])
        wait_for("the webserver", lambda: listening(cluster.webserver_port))
        yield cluster
    except BaseException:
        print(cluster.describe())  # the processes' logs, when something went wrong
        raise
    finally:
        for process in cluster.processes.values():
            process.terminate()
        for process in cluster.processes.values():
            process.stop()
        if cluster._instance is not None:
            cluster._instance.dispose()
        for serving in servings:
            serving.__exit__(None, None, None)
        for business in businesses.values():
            business.emulator.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
