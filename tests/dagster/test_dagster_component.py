"""The repository as a ``dg`` project, and ``KizenSyncComponent`` in someone else's project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from dagster_project.component import KizenSyncComponent
from kizen_sync.demo import write_sync_file

ROOT = Path(__file__).resolve().parents[2]


def dg_cli(*args: str, sync_file: Path) -> subprocess.CompletedProcess[str]:
    """Run this environment's ``dg`` in the repository, as a user with the venv active would."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "KIZEN_SYNC_CONFIG": str(sync_file),
        "VIRTUAL_ENV": str(bin_dir.parent),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [str(bin_dir / "dg"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_dg_check_defs_passes_on_the_repository(tmp_path: Path) -> None:
    result = dg_cli("check", "defs", sync_file=write_sync_file(tmp_path, tmp_path / "w.db"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_shows_each_sync_downstream_of_its_source(tmp_path: Path) -> None:
    sync_file = write_sync_file(tmp_path, tmp_path / "w.db")
    result = dg_cli("list", "defs", "--json", sync_file=sync_file)

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert assets["kizen/contacts_plan"]["dependency_keys"] == ["crm_contacts"]
    assert assets["kizen/contacts"]["dependency_keys"] == ["kizen/contacts_plan"]
    assert {"crm_contacts", "crm_accounts", "kizen/accounts_backfill"} <= set(assets)
    assert {j["name"] for j in listed["jobs"]} >= {"contacts_sync", "contacts_retry_failed"}


def test_component_in_a_dg_project_with_yaml_translation(tmp_path: Path) -> None:
    sync_file = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=KizenSyncComponent,
            defs_yaml_contents={
                "type": "dagster_project.component.KizenSyncComponent",
                "attributes": {
                    "sync_file": str(sync_file),
                    "backfill_policy": "single_run",
                    "translation": {
                        "group_name": "crm",
                        "tags": {"team": "crm-{{ data.role }}"},
                    },
                },
            },
        )
        # Dagster marks the backfill_policy parameter beta; single_run is asked for here.
        with pytest.warns(dg.BetaWarning), sandbox.build_component_tree() as tree:
            component, defs = tree.load_component(path), tree.build_defs(path)
        assert isinstance(component, KizenSyncComponent)
        records = next(iter(defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts"])).specs))
        assert records.group_name == "crm"
        assert records.tags["team"] == "crm-sync"
        assert records.tags["kizen_sync/sync"] == "contacts"  # merged, not replaced
        backfill = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts_backfill"]))
        assert backfill.backfill_policy == dg.BackfillPolicy.single_run()
        plan = defs.resolve_asset_graph().get(dg.AssetKey(["kizen", "contacts_plan"]))
        assert plan.parent_keys == {dg.AssetKey("crm_contacts")}


# Dagster's own code references of component assets are beta; a dg project only shows it.
@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_the_readme_defs_yaml_loads_as_written() -> None:
    """The README's ``defs.yaml``, unchanged, in a fresh project with ``syncs.yaml`` at its root."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("`KizenSyncComponent`", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    contents = yaml.safe_load(block)
    with create_defs_folder_sandbox() as sandbox:
        write_sync_file(sandbox.project_root, sandbox.project_root / "warehouse.db")
        path = sandbox.scaffold_component(
            component_cls=KizenSyncComponent, defs_yaml_contents=contents
        )
        with sandbox.build_component_tree() as tree:
            defs = tree.build_defs(path)
        plan = defs.resolve_asset_graph().get(dg.AssetKey(["kizen", "contacts_plan"]))
        assert plan.parent_keys == {dg.AssetKey("crm_contacts")}
        assert plan.group_name == "crm"
        assert defs.resolve_job_def("contacts_sync") is not None
