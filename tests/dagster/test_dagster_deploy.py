"""deploy/dagster.yaml: a Dagster instance whose runs are stored in PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_world import Project
from sqlalchemy import create_engine, text

from kizen_sync.demo import seed_warehouse
from kizen_sync.emulator import Emulator
from tests.support.postgres import owned_database, url_of

DEPLOY_CONFIG = Path(__file__).parents[2] / "deploy" / "dagster.yaml"


@pytest.fixture
def dagster_pg_url(pg_url: str) -> Iterator[str]:
    """A database of this test for Dagster's storage, dropped afterwards (psycopg2 URL)."""
    with owned_database("dagster", pg_url) as name:
        yield url_of(name, driver="psycopg2")


@pytest.fixture
def pg_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_pg_url: str) -> Path:
    """$DAGSTER_HOME holding deploy/dagster.yaml as is, its URL pointed at the test's database."""
    shutil.copy(DEPLOY_CONFIG, tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_DIR", str(tmp_path / "compute_logs"))
    return tmp_path


@pytest.mark.postgres
def test_a_sync_run_is_recorded_in_postgres(
    pg_dagster_home: Path, dagster_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = Emulator.demo()
    monkeypatch.setenv("KIZEN_API_KEY", emulator.credentials[0])
    url = seed_warehouse(tmp_path / "warehouse.db")
    instance = dg.DagsterInstance.get()
    try:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        with emulator.serve(host="127.0.0.1", port=0) as base_url:
            project = Project(tmp_path, url, emulator, base_url, instance)
            result = project.run_job(project.definitions(), "contacts_sync")
        assert result.success
        assert len(emulator.records("client_client")) == 25
        # Step logs went to the shared directory, where the webserver reads them.
        assert any((pg_dagster_home / "compute_logs" / result.run_id).rglob("*.complete"))
        assert instance.get_run_by_id(result.run_id) is not None
    finally:
        instance.dispose()
        emulator.close()
    engine = create_engine(dagster_pg_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT status, pipeline_name FROM runs WHERE run_id = :id"),
                {"id": result.run_id},
            ).one()
            materialized = conn.execute(
                text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :id"
                    " AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                ),
                {"id": result.run_id},
            ).scalar()
    finally:
        engine.dispose()
    assert tuple(stored) == ("SUCCESS", "contacts_sync")
    assert materialized == 2  # kizen/contacts_plan and kizen/contacts
