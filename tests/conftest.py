"""Shared fixtures: throwaway SQLite files and PostgreSQL schemas, result builders, and the
evidence guard (every emulator sits behind the validating proxy; a test whose requests
include a route or shape no source supports fails).

Every PostgreSQL object a test creates is owned by this process and dropped by a finalizer
(after a failure too); a session fixture sweeps what killed runs left (``tests.support.postgres``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from kizen_sync.emulator import Emulator
from kizen_sync.models import AttemptRecord, Operation, Outcome, PlannedOp, RecordResult
from kizen_sync.warehouse import Warehouse
from tests.support.postgres import PG_URL, owned_schema, sweep_stale

# Property tests are judged by their examples, never by the clock: no per-example deadline
# and no "generation too slow" health check, which a busy machine would trip.
settings.register_profile("kizen", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kizen")


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_postgres() -> Iterator[None]:
    """Drop databases and schemas left by test or bench runs that were killed outright."""

    def sweep() -> None:
        try:
            sweep_stale()
        except OperationalError:
            pass  # no server: the tests that need one skip with the reason

    sweep()
    yield
    sweep()


#: Tests here send wrong requests on purpose (they test the emulator's refusals).
_EVIDENCE_EXEMPT_DIRS = ("tests/emulator/",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "evidence_exempt: the test sends requests no source supports on purpose",
    )
    Emulator.validate_by_default = True


def _findings() -> dict[int, dict[Any, int]]:
    return {id(e): e.proxy.findings() for e in list(Emulator.instances) if e.proxy is not None}


@pytest.fixture(autouse=True)
def _evidence_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose requests to an emulator include an unsupported route or shape.

    The proxy grades every request (kizen_sync.emulator.evidence); only what *this* test
    added counts, so emulators shared between tests are fine.
    """
    path = str(request.node.path).replace("\\", "/")
    exempt = request.node.get_closest_marker("evidence_exempt") is not None or any(
        d in path for d in _EVIDENCE_EXEMPT_DIRS
    )
    before = {} if exempt else _findings()
    yield
    if exempt:
        return
    new: list[str] = []
    for emu in list(Emulator.instances):
        if emu.proxy is None:
            continue
        seen = before.get(id(emu), {})
        new.extend(
            f"{finding} (x{count - seen.get(finding, 0)})"
            for finding, count in emu.proxy.findings().items()
            if finding.tier.name == "UNSUPPORTED" and count > seen.get(finding, 0)
        )
    if new:
        pytest.fail(
            "requests no source supports reached the emulator:\n  " + "\n  ".join(sorted(new)),
            pytrace=False,
        )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of its own for each test."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL; skips (with the reason) when the server does not answer."""
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.orig}")
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema, dropped with everything in it after the test."""
    with owned_schema(pg_url) as name:
        yield name


@dataclass
class Db:
    """A warehouse under test plus where its source tables go."""

    warehouse: Warehouse
    schema: str | None
    quote: bool = True  # Snowflake folds unquoted names to upper case: leave them unquoted

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def table(self, name: str) -> str:
        """The table name as a sync file would give it."""
        return f"{self.schema}.{name}" if self.schema else name

    def run(self, sql: str, params: Any = None) -> None:
        """Run SQL where ``{s}`` stands for the schema qualifier (``"x".`` or nothing)."""
        name = f'"{self.schema}"' if self.quote else self.schema
        qualifier = f"{name}." if self.schema else ""
        with self.warehouse.engine.begin() as conn:
            conn.execute(text(sql.replace("{s}", qualifier)), params or {})


#: The warehouses every ``db`` test runs on, live.
LIVE_WAREHOUSES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "duckdb"]
#: The same and Snowflake against fakesnow (``any_db``: the end-to-end suite, canonical text).
ALL_WAREHOUSES = [*LIVE_WAREHOUSES, pytest.param("snowflake", marks=pytest.mark.snowflake_fake)]


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, Any]]:
    """A fakesnow server (Snowflake's HTTP API answered by DuckDB) for the whole session."""
    fakesnow = pytest.importorskip("fakesnow")
    with fakesnow.server() as connection:
        yield connection


def snowflake_engine(server: dict[str, Any], schema: str) -> Any:
    """An engine of the real Snowflake dialect and connector, talking to the fake."""
    # Server-side binding (qmark): fakesnow reads "$word" in an inlined literal as a session
    # variable (values_json holds {"$decimal": ...}); Snowflake does not.
    return create_engine(
        f"snowflake://fake:snow@fakesnow/kizen/{schema}",
        paramstyle="qmark",
        connect_args={
            "paramstyle": "qmark",
            "host": server["host"],
            "port": server["port"],
            "protocol": server["protocol"],
            "session_parameters": server["session_parameters"],
            "network_timeout": 1,  # no retries: a fake's 500 is an answer, not a glitch
        },
    )


def duckdb_url(tmp_path: Path) -> str:
    """A DuckDB database file of its own for each test."""
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=LIVE_WAREHOUSES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """The same test on SQLite, PostgreSQL (state tables in the test's schema) and DuckDB."""
    yield from _warehouse(request, tmp_path)


@pytest.fixture(params=ALL_WAREHOUSES)
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """The live warehouses of ``db`` and Snowflake (fakesnow: a schema of its own, state
    tables in it).
    """
    yield from _warehouse(request, tmp_path)


def _warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
        yield Db(warehouse, None)
    elif request.param == "duckdb":
        warehouse = Warehouse(duckdb_url(tmp_path))
        yield Db(warehouse, None)
    elif request.param == "snowflake":
        server = request.getfixturevalue("fakesnow_server")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        engine = snowflake_engine(server, schema)
        warehouse = Warehouse(engine, state_schema=schema)
        try:
            yield Db(warehouse, schema, quote=False)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            engine.dispose()
    else:
        schema = request.getfixturevalue("pg_schema")
        warehouse = Warehouse(request.getfixturevalue("pg_url"), state_schema=schema)
        yield Db(warehouse, schema)
    warehouse.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def make_result(
    key: str,
    *,
    op: Operation = Operation.UPDATE,
    outcome: Outcome = Outcome.SUCCESS,
    fingerprint: str | None = "fp",
    values: dict[str, Any] | None = None,
    kizen_id: str | None = "rec-1",
    attempts: tuple[AttemptRecord, ...] | None = None,
    **op_fields: Any,
) -> RecordResult:
    """A RecordResult with one attempt of the given outcome unless ``attempts`` is given."""
    planned = PlannedOp(
        op=op,
        source_key=key,
        kizen_id=kizen_id,
        new_values=values or {},
        fingerprint=fingerprint,
        **op_fields,
    )
    if attempts is None:
        status = 200 if outcome is Outcome.SUCCESS else 400
        attempts = (AttemptRecord(1, outcome, _now(), _now(), http_status=status),)
    return RecordResult(op=planned, outcome=outcome, kizen_id=kizen_id, attempts=attempts)


@pytest.fixture
def result() -> Callable[..., RecordResult]:
    """Builder of RecordResults (see :func:`make_result`)."""
    return make_result
