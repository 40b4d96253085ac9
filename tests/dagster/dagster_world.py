"""The Dagster tests' world: demo warehouse, emulator on loopback, sync file, instance."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from sqlalchemy import create_engine, text

from dagster_project.build import build_definitions
from kizen_sync.demo import write_sync_file
from kizen_sync.emulator import Emulator
from kizen_sync.warehouse import StateStore, Warehouse


@dataclass
class Project:
    """One test's world: warehouse, emulator, sync file and Dagster instance."""

    workdir: Path
    warehouse_url: str
    emulator: Emulator
    base_url: str
    instance: dg.DagsterInstance

    def sync_file(self, **contacts: Any) -> Path:
        """The demo sync file against this emulator; ``contacts`` overrides that sync's keys."""
        path = write_sync_file(self.workdir, self.workdir / "warehouse.db")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["kizen"]["base_url"] = self.base_url
        data["syncs"][0].update(contacts)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def definitions(self, **contacts: Any) -> dg.Definitions:
        return build_definitions(self.sync_file(**contacts))

    def sql(self, statement: str) -> None:
        engine = create_engine(self.warehouse_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def audit_rows(self, sync: str = "contacts") -> list[dict[str, Any]]:
        with Warehouse(self.warehouse_url) as warehouse:
            return StateStore(warehouse).audit_rows(sync=sync)

    def writes(self) -> int:
        """Write requests Kizen received (the emulator's own request log)."""
        log = self.emulator.request_log
        return sum(log.total(method=m) for m in ("POST", "PATCH", "PUT", "DELETE"))

    def first_names(self) -> dict[str, Any]:
        """E-mail -> first name of the live contacts Kizen holds (the emulator's own state)."""
        names = {}
        for record in self.emulator.records("client_client"):
            if record.get("archived"):
                continue
            fields = {f["name"]: f["value"] for f in record["fields"].values()}
            names[fields["email"]] = fields["first_name"]
        return names

    def run_job(self, defs: dg.Definitions, name: str) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def(name).execute_in_process(
            instance=self.instance, raise_on_error=False
        )

    def dagster(self, home: Path, *args: str, **env: str) -> None:
        """The ``dagster`` command, as a person types it, on the instance in ``home`` and this
        world's sync file (``env`` adds variables; ``KIZEN_SYNC_*`` ones are not inherited).
        """
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KIZEN_SYNC_")}
        environ |= {"DAGSTER_HOME": str(home), "KIZEN_SYNC_CONFIG": str(self.sync_file())}
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dagster")), *args],
            cwd=Path(__file__).parents[2],
            env=environ | env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def materialize(
        self, defs: dg.Definitions, key: str, partition_key: str | None = None
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [defs.resolve_assets_def(dg.AssetKey.from_user_string(key))],
            partition_key=partition_key,
            instance=self.instance,
            raise_on_error=False,
        )


def materializations(result: dg.ExecuteInProcessResult, key: str) -> list[dg.AssetMaterialization]:
    asset_key = dg.AssetKey.from_user_string(key)
    return [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == asset_key
    ]


def observations(result: dg.ExecuteInProcessResult, key: str) -> list[dg.AssetObservation]:
    asset_key = dg.AssetKey.from_user_string(key)
    return [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.is_asset_observation
        and event.asset_observation_data.asset_observation.asset_key == asset_key
    ]


def metadata_values(event: dg.AssetMaterialization | dg.AssetObservation) -> dict[str, Any]:
    """Plain values of a materialization's or an observation's metadata."""
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
