"""A Dagster asset's pandas DataFrame as the source of a sync: staged, then diffed like a table."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pytest
from dagster_world import Project, materializations, metadata_values
from sqlalchemy import create_engine

from kizen_sync.errors import ConfigError

FRAME_KEY = ["analytics", "contacts"]
STAGE = "kizen_stage_contacts"


def frame_source() -> dict[str, Any]:
    return {
        "dataframe": "analytics/contacts",
        "table": STAGE,
        "primary_key": ["contact_id"],
        "cursor_column": "updated_at",
    }


def definitions(project: Project, frames: list[pd.DataFrame]) -> dg.Definitions:
    """The sync's definitions plus an asset that returns the next frame of ``frames``."""

    @dg.asset(key=FRAME_KEY)
    def contacts_frame() -> pd.DataFrame:
        return frames[0]

    defs = project.definitions(source=frame_source())
    return dg.Definitions.merge(defs, dg.Definitions(assets=[contacts_frame]))


def warehouse_frame(project: Project) -> pd.DataFrame:
    engine = create_engine(project.warehouse_url)
    try:
        return pd.read_sql("SELECT * FROM crm_contacts ORDER BY contact_id", engine)
    finally:
        engine.dispose()


def run(project: Project, defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    keys = [dg.AssetKey(FRAME_KEY), dg.AssetKey(["kizen", "contacts_plan"])]
    keys.append(dg.AssetKey(["kizen", "contacts"]))
    return dg.materialize(
        [defs.resolve_assets_def(k) for k in keys], instance=project.instance, raise_on_error=False
    )


def test_a_dataframe_is_staged_and_synced_like_a_table(project: Project) -> None:
    frames = [warehouse_frame(project)]
    defs = definitions(project, frames)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["kizen", "contacts_plan"])).parent_keys == {
        dg.AssetKey(FRAME_KEY)
    }

    first = run(project, defs)

    assert first.success
    plan = metadata_values(materializations(first, "kizen/contacts_plan")[0])
    assert plan["staged_rows"] == 25
    applied = metadata_values(materializations(first, "kizen/contacts")[0])
    assert applied["created"] == 25
    assert len(project.emulator.records("client_client")) == 25

    # The next frame: one row edited, one gone. Only those two reach Kizen.
    edited = frames[0].copy()
    edited.loc[edited.contact_id == 1, "first_name"] = "Augusta"
    frames[0] = edited[edited.contact_id != 25]
    writes = project.writes()

    second = run(project, defs)

    assert second.success
    applied = metadata_values(materializations(second, "kizen/contacts")[0])
    counts = (applied["updated"], applied["archived"], applied["unchanged"], applied["created"])
    assert counts == (1, 1, 23, 0)
    assert project.writes() == writes + 2
    names = project.first_names()
    assert names["ada.lovelace@example.com"] == "Augusta"
    assert "whitfield.d@example.com" not in names


def test_a_bad_frame_never_replaces_the_stage(project: Project) -> None:
    frames = [warehouse_frame(project)]
    defs = definitions(project, frames)
    assert run(project, defs).success
    frames[0] = pd.concat([frames[0], frames[0].head(2)])  # keys 1 and 2 twice
    writes = project.writes()

    result = run(project, defs)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert "primary key ['contact_id'] is not unique, e.g. ['1', '2']" in (
        failure.description or ""
    )
    engine = create_engine(project.warehouse_url)
    try:
        staged = pd.read_sql(f"SELECT COUNT(*) AS n FROM {STAGE}", engine)["n"][0]
    finally:
        engine.dispose()
    assert staged == 25
    assert project.writes() == writes


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"dataframe": "analytics/contacts", "primary_key": ["contact_id"]}, "needs 'table'"),
        ({**frame_source(), "asset_key": "x/y"}, "drop asset_key"),
    ],
)
def test_dataframe_sources_are_validated(
    project: Project, source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        project.definitions(source=source)
