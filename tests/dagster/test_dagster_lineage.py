"""Lineage: the source that feeds each sync, from the table, the sync file, or a dbt manifest.

No `from __future__ import annotations`: Dagster reads the dbt asset's annotations at runtime.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.build import build_definitions
from dagster_project.translator import KizenSyncTranslator, KizenSyncTranslatorData
from kizen_sync.demo import write_sync_file
from kizen_sync.errors import ConfigError

DBT_MANIFEST = Path(__file__).parent / "dbt_project" / "manifest.json"


def sync_file(tmp_path: Path, **contacts_source: Any) -> Path:
    path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["syncs"][0]["source"].update(contacts_source)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def parents(defs: dg.Definitions, key: str) -> set[str]:
    node = defs.resolve_asset_graph().get(dg.AssetKey.from_user_string(key))
    return {k.to_user_string() for k in node.parent_keys}


def asset_keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_asset_key_named_in_the_sync_file(tmp_path: Path) -> None:
    defs = build_definitions(sync_file(tmp_path, asset_key="analytics/crm/contacts"))

    assert parents(defs, "kizen/contacts_plan") == {"analytics/crm/contacts"}
    assert parents(defs, "kizen/contacts_backfill") == {"analytics/crm/contacts"}
    # A key named in the file belongs to whoever builds the table: not declared here, so a
    # project that defines it does not clash; Dagster shows it as external until then.
    assert "crm_contacts" not in asset_keys(defs)

    @dg.asset(key=["analytics", "crm", "contacts"])
    def contacts_frame() -> None: ...

    merged = dg.Definitions.merge(defs, dg.Definitions(assets=[contacts_frame]))
    dg.Definitions.validate_loadable(merged)
    node = merged.resolve_asset_graph().get(dg.AssetKey(["analytics", "crm", "contacts"]))
    assert node.is_materializable


def test_bad_asset_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"syncs\[0\]\.source\.asset_key"):
        build_definitions(sync_file(tmp_path, asset_key="crm contacts"))


def test_dbt_model_key_and_dependency_come_from_the_manifest(tmp_path: Path) -> None:
    # The fixture's model sets meta.dagster.asset_key = [marts, crm_contacts]: the key can
    # only come from reading the manifest, as dagster-dbt does.
    defs = build_definitions(
        sync_file(tmp_path, dbt_model="crm_contacts"), dbt_manifest=DBT_MANIFEST
    )

    assert parents(defs, "kizen/contacts_plan") == {"marts/crm_contacts"}
    assert parents(defs, "kizen/contacts_backfill") == {"marts/crm_contacts"}

    # With the dbt project's own assets in the same code location, the sync hangs off them.
    @dbt_assets(manifest=DBT_MANIFEST)
    def crm_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Any:
        yield from dbt.cli(["build"], context=context).stream()

    dbt = dg.ResourceDefinition.none_resource()  # dbt itself is not installed here
    merged = dg.Definitions.merge(defs, dg.Definitions(assets=[crm_dbt], resources={"dbt": dbt}))
    dg.Definitions.validate_loadable(merged)
    assert parents(merged, "marts/crm_contacts") == {"raw/contacts"}
    assert (
        merged.resolve_asset_graph().get(dg.AssetKey(["marts", "crm_contacts"])).is_materializable
    )


def test_unknown_dbt_model_names_the_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no model 'contacts' \(models: crm_contacts\)"):
        build_definitions(sync_file(tmp_path, dbt_model="contacts"), dbt_manifest=DBT_MANIFEST)


def test_query_source_has_no_upstream_unless_named(tmp_path: Path) -> None:
    defs = build_definitions(sync_file(tmp_path, table=None, query="SELECT * FROM crm_contacts"))

    assert parents(defs, "kizen/contacts_plan") == set()
    assert "crm_contacts" not in asset_keys(defs)


class CrmTranslator(KizenSyncTranslator):
    """Everything under crm/, owned by the CRM team, sources in the raw group."""

    def get_asset_key(self, data: KizenSyncTranslatorData) -> dg.AssetKey:
        return super().get_asset_key(data).with_prefix("crm")

    def get_group_name(self, data: KizenSyncTranslatorData) -> str | None:
        return "raw" if data.role == "source" else "crm_sync"

    def get_owners(self, data: KizenSyncTranslatorData) -> list[str]:
        return ["team:crm"]

    def get_tags(self, data: KizenSyncTranslatorData) -> dict[str, str]:
        return {**super().get_tags(data), "domain": "crm"}


def test_a_translator_changes_keys_groups_tags_and_owners(tmp_path: Path) -> None:
    defs = build_definitions(sync_file(tmp_path), translator=CrmTranslator())

    assert parents(defs, "crm/kizen/contacts_plan") == {"crm/crm_contacts"}
    assert parents(defs, "crm/kizen/contacts") == {"crm/kizen/contacts_plan"}
    spec = next(iter(defs.resolve_assets_def(dg.AssetKey(["crm", "kizen", "contacts"])).specs))
    assert (spec.group_name, spec.owners, spec.tags["domain"]) == ("crm_sync", ["team:crm"], "crm")
    source = next(iter(defs.resolve_assets_def(dg.AssetKey(["crm", "crm_contacts"])).specs))
    assert source.group_name == "raw"
    # Jobs and checks follow the renamed keys.
    job = defs.resolve_job_def("contacts_sync")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "crm/kizen/contacts_plan",
        "crm/kizen/contacts",
    }
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert "contacts_failure_rate" in checks
