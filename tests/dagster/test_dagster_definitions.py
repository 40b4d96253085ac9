"""What the code location shows: assets, checks, partitions, jobs, schedules, resources."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dagster_project.build import build_definitions
from dagster_project.partitions import partition_for_key
from dagster_project.settings import backfill_policy_from_env, sync_file_path
from kizen_sync.config import load_config
from kizen_sync.demo import write_sync_file
from kizen_sync.errors import ConfigError


def demo_file(tmp_path: Path, **changes: Any) -> Path:
    """The demo sync file; ``changes`` maps a sync name to keys merged into that sync."""
    path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for sync in data["syncs"]:
        sync.update(changes.get(sync["name"], {}))
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def defs(tmp_path: Path) -> dg.Definitions:
    return build_definitions(
        demo_file(
            tmp_path,
            contacts={
                "owners": ["team:crm", "ops@example.com"],
                "schedule": "*/15 * * * *",
                "partitions": {"start": "2024-03-01"},
            },
            accounts={
                "group": "revenue",
                "source": {"table": "crm_accounts", "primary_key": ["account_id"]},
                "partitions": {"buckets": 4},
            },
        )
    )


def test_definitions_load(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)


def test_assets_describe_themselves(defs: dg.Definitions) -> None:
    firsts = set()
    for name in ("contacts_plan", "contacts", "contacts_backfill"):
        key = dg.AssetKey(["kizen", name])
        spec = next(iter(defs.resolve_assets_def(key).specs))
        assert spec.group_name == "kizen"
        assert spec.kinds == {"kizen", "sqlite"}
        assert spec.owners == ["team:crm", "ops@example.com"]
        assert spec.tags["kizen_sync/sync"] == "contacts"
        assert "CRM contacts from the warehouse" in (spec.description or "")
        firsts.add((spec.description or "").split(". ")[0])
    # The catalogue shows each asset's first sentence: three assets, three different ones.
    assert len(firsts) == 3
    accounts = next(iter(defs.resolve_assets_def(dg.AssetKey(["kizen", "accounts"])).specs))
    assert accounts.group_name == "revenue"
    for name in ("contacts", "contacts_backfill"):
        op = defs.resolve_assets_def(dg.AssetKey(["kizen", name])).op
        assert op.pool == "kizen_api/5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"  # the demo business


def test_each_sync_is_downstream_of_its_source_table(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        node = graph.get(dg.AssetKey.from_user_string(key))
        return {k.to_user_string() for k in node.parent_keys}

    assert parents("kizen/contacts_plan") == {"crm_contacts"}
    assert parents("kizen/contacts") == {"kizen/contacts_plan"}
    assert parents("kizen/contacts_backfill") == {"crm_contacts"}
    source = graph.get(dg.AssetKey("crm_contacts"))
    assert source.is_external
    spec = next(iter(defs.resolve_assets_def(dg.AssetKey("crm_contacts")).specs))
    assert spec.kinds == {"sqlite"}
    assert (spec.description or "").startswith("Warehouse table `crm_contacts`, the source of")


def test_guards_are_checks_on_the_plan_and_the_run_checks_on_the_records(
    defs: dg.Definitions,
) -> None:
    plan = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts_plan"]))
    specs = {spec.name: spec for spec in plan.check_specs}
    assert set(specs) == {"contacts_mass_archive_guard", "contacts_reject_rate_guard"}
    # Not Dagster-blocking: the runner enforces them, so the records step still runs, stops
    # before any write and evaluates its own checks instead of leaving them "failed".
    assert not any(spec.blocking for spec in specs.values())
    apply = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts"]))
    assert {spec.name for spec in apply.check_specs} == {
        "contacts_failure_rate",
        "contacts_failures_left_open",
    }


def test_partitions_from_the_data_or_key_buckets(defs: dg.Definitions) -> None:
    contacts = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts_backfill"]))
    dynamic = contacts.partitions_def
    assert isinstance(dynamic, dg.DynamicPartitionsDefinition)
    assert dynamic.name == "contacts_daily"
    sync = load_config(demo_file_path(defs)).sync("contacts")
    window = partition_for_key(sync, "2024-03-02")
    assert (window.start, window.end) == (
        datetime(2024, 3, 2, tzinfo=UTC),
        datetime(2024, 3, 3, tzinfo=UTC),
    )
    assert contacts.backfill_policy is None  # Dagster's default: one partition per run
    accounts = defs.resolve_assets_def(dg.AssetKey(["kizen", "accounts_backfill"]))
    assert accounts.partitions_def is not None
    keys = accounts.partitions_def.get_partition_keys()
    assert keys == ["bucket-00-of-4", "bucket-01-of-4", "bucket-02-of-4", "bucket-03-of-4"]
    bucket = partition_for_key(load_config(demo_file_path(defs)).sync("accounts"), keys[2])
    assert (bucket.bucket, bucket.buckets) == (2, 4)


def demo_file_path(defs: dg.Definitions) -> Path:
    """The sync file a fixture's definitions were built from (beside the warehouse)."""
    url = defs.resources["warehouse"].url
    return Path(url.removeprefix("sqlite:///")).parent / "syncs.yaml"


def test_jobs_and_schedules_from_the_file(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("contacts_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.job_name == "contacts_sync"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert "Created stopped" in (schedule.description or "")
    # accounts gives no schedule: it gets none (no hourly schedule nobody asked for).
    assert [s.name for s in defs.schedules or []] == ["contacts_schedule"]
    retry = defs.resolve_job_def("contacts_retry_failed")
    assert retry.run_config is not None
    assert retry.run_config["ops"]["kizen__contacts"]["config"]["only_failed"] is True
    assert {a.path[-1] for a in retry.asset_layer.selected_asset_keys} == {"contacts"}
    assert defs.resolve_sensor_def("kizen_sync_run_failures") is not None


def test_secrets_are_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZEN_SYNC_TEST_WAREHOUSE", f"sqlite:///{tmp_path / 'w.db'}")
    path = demo_file(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["warehouse"]["url"] = "${KIZEN_SYNC_TEST_WAREHOUSE}"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    resources = build_definitions(path).resources

    shown = resources["kizen"]._get_non_default_public_field_values()
    assert isinstance(resources["kizen"].__dict__["api_key"], dg.EnvVar)
    assert shown["api_key"] == "KIZEN_API_KEY"
    assert isinstance(resources["warehouse"].__dict__["url"], dg.EnvVar)


def test_missing_sync_file_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIZEN_SYNC_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"kizen-sync demo --workdir \.demo"):
        sync_file_path()
    monkeypatch.setenv("KIZEN_SYNC_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml, which is not a file"):
        sync_file_path()


def test_code_location_module_loads_the_named_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZEN_SYNC_CONFIG", str(demo_file(tmp_path)))
    monkeypatch.delitem(sys.modules, "dagster_project.definitions", raising=False)

    module = importlib.import_module("dagster_project.definitions")
    defs = module.defs()

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("contacts_sync") is not None


def test_an_installed_package_loads_as_a_code_location(tmp_path: Path) -> None:
    """``pip install kizen-sync[celery]`` puts the package in site-packages, with no
    pyproject.toml above it: the code servers, workers and daemon of a deployment load it."""
    site = tmp_path / "site-packages"
    shutil.copytree(
        Path(__file__).parents[2] / "dagster_project",
        site / "dagster_project",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    probe = (
        "import dagster_project.definitions as m; d = m.defs(); "
        "print(m.__file__); print(sorted(j.name for j in d.jobs)); "
        "print(sorted(s.name for s in d.schedules))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "KIZEN_SYNC_CONFIG": str(demo_file(tmp_path, contacts={"schedule": "0 * * * *"})),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    loaded_from, jobs, schedules = result.stdout.splitlines()[-3:]
    assert loaded_from.startswith(str(site))
    assert "'contacts_sync'" in jobs
    assert "'accounts_retry_failed'" in jobs
    assert schedules == "['contacts_schedule']"


def test_backfill_policy_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backfill_policy_from_env() is None
    monkeypatch.setenv("KIZEN_SYNC_BACKFILL_POLICY", "single_run")
    assert backfill_policy_from_env() == dg.BackfillPolicy.single_run()
    monkeypatch.setenv("KIZEN_SYNC_BACKFILL_POLICY", "sometimes")
    with pytest.raises(ConfigError, match="multi_run, single_run"):
        backfill_policy_from_env()


# Dagster marks the `backfill_policy` parameter of @asset as beta; the single-run policy is opt-in.
@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_single_run_backfills(tmp_path: Path) -> None:
    defs = build_definitions(demo_file(tmp_path), backfill_policy=dg.BackfillPolicy.single_run())

    backfill = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts_backfill"]))

    assert backfill.backfill_policy == dg.BackfillPolicy.single_run()
