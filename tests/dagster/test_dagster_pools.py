"""Pools per Kizen business, pool waits in the run's log, and partition ranges from the CLI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_world import Project
from sqlalchemy import create_engine, text

from dagster_project.build import build_definitions
from kizen_sync.demo import write_sync_file
from kizen_sync.errors import ConfigError

DEMO_BUSINESS = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
RANGE = ["--select", "kizen/contacts_backfill", "--partition-range", "2024-03-01...2024-03-02"]


def sync_file(tmp_path: Path, **kizen: Any) -> Path:
    path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["kizen"].update(kizen)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def pools(defs: dg.Definitions) -> set[str | None]:
    return {
        defs.resolve_assets_def(dg.AssetKey(["kizen", name])).op.pool
        for name in ("contacts", "contacts_backfill", "accounts", "accounts_backfill")
    }


def test_every_writer_of_a_business_shares_its_pool(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    other = "0b7e58d1-95a3-4c55-9a5c-3c1f2e4d6a7b"
    acme = build_definitions(sync_file(tmp_path / "a", business_id=DEMO_BUSINESS.upper()))
    globex = build_definitions(sync_file(tmp_path / "b", business_id=other))
    assert pools(acme) == {f"kizen_api/{DEMO_BUSINESS}"}
    assert pools(globex) == {f"kizen_api/{other}"}
    # The plan only reads: it takes no slot.
    assert acme.resolve_assets_def(dg.AssetKey(["kizen", "contacts_plan"])).op.pool is None


def test_the_sync_file_can_name_the_pool(tmp_path: Path) -> None:
    assert pools(build_definitions(sync_file(tmp_path, pool="kizen_api/production"))) == {
        "kizen_api/production"
    }
    with pytest.raises(ConfigError) as caught:
        build_definitions(sync_file(tmp_path, pool="kizen api"))
    (problem,) = caught.value.problems
    assert problem.key == "kizen.pool"
    assert "'kizen api'" in problem.message


def test_a_run_waiting_for_its_pool_says_so(project: Project) -> None:
    defs = project.definitions()
    pool = f"kizen_api/{DEMO_BUSINESS}"
    storage = project.instance.event_log_storage
    storage.set_concurrency_slots(pool, 1)
    # Another run of the same business holds the slot.
    assert storage.claim_concurrency_slot(pool, "another-run", "kizen__contacts").is_claimed
    job = defs.resolve_job_def("contacts_sync")
    result: list[dg.ExecuteInProcessResult] = []
    worker = threading.Thread(
        target=lambda: result.append(
            job.execute_in_process(instance=project.instance, raise_on_error=False)
        )
    )
    worker.start()

    def blocked() -> bool:
        runs = project.instance.get_runs(limit=1)
        return bool(runs) and any(
            f"blocked by limit for pool {pool}" in (e.user_message or "")
            for e in project.instance.all_logs(runs[0].run_id)
        )

    deadline = 600
    while not blocked() and worker.is_alive() and deadline:
        worker.join(0.5)
        deadline -= 1
    assert blocked()
    assert project.writes() == 0  # nothing was sent while the other run held the slot
    storage.free_concurrency_slots_for_run("another-run")
    worker.join(300)
    assert result
    assert result[0].success
    assert len(project.emulator.records("client_client")) == 25


def _runs_table(project: Project) -> dict[str, str]:
    engine = create_engine(project.warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT run_id, status FROM kizen_sync_runs")).all()
    finally:
        engine.dispose()
    return {run_id: status for run_id, status in rows}


def test_a_partition_range_from_the_cli(project: Project, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # The first sync records the partitions that hold rows (they come from the data).
    project.dagster(
        home, "job", "execute", "-m", "dagster_project.definitions", "-j", "contacts_sync"
    )
    synced = set(_runs_table(project))
    project.sql(
        "UPDATE crm_contacts SET first_name = first_name || ' (range)'"
        " WHERE substr(updated_at, 1, 10) IN ('2024-03-01', '2024-03-02')"
    )
    # Dagster's CLI takes a range only on single-run assets.
    materialize = ["asset", "materialize", "-m", "dagster_project.definitions", *RANGE]
    project.dagster(home, *materialize, KIZEN_SYNC_BACKFILL_POLICY="single_run")
    # One run, one row per partition in the runs table; Kizen got contacts 1-5 (both days).
    statuses = {k: v for k, v in _runs_table(project).items() if k not in synced}
    assert sorted(k.rsplit(":", 1)[1] for k in statuses) == ["2024-03-01", "2024-03-02"]
    assert set(statuses.values()) == {"success"}
    names = [
        field["value"]
        for record in project.emulator.records("client_client")
        for field in record["fields"].values()
        if field["name"] == "first_name"
    ]
    assert len(names) == 25
    assert len([n for n in names if str(n).endswith(" (range)")]) == 5
