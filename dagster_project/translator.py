"""How a sync becomes Dagster asset specs: keys, groups, tags, owners, descriptions, lineage.

In the style of ``DagsterDltTranslator`` and ``DagsterSlingTranslator``: every asset of a
sync (its source, the plan, the synced records, the backfill) is described by one
:class:`KizenSyncTranslatorData` and turned into a :class:`dagster.AssetSpec` by
:meth:`KizenSyncTranslator.get_asset_spec`. Subclass the translator and override that method,
or one of the ``get_*`` methods it calls, to rename keys, regroup, tag or re-own assets::

    class MyTranslator(KizenSyncTranslator):
        def get_asset_key(self, data: KizenSyncTranslatorData) -> dg.AssetKey:
            return super().get_asset_key(data).with_prefix("crm")

    defs = build_definitions(Path("syncs.yaml"), translator=MyTranslator())

Lineage: the source is upstream of the plan and of the backfill, the plan upstream of the
records asset. The source's key is, in order: ``source.asset_key`` from the sync file; the
key dagster-dbt gives ``source.dbt_model`` in the dbt manifest (when one is given); the
DataFrame asset named by ``source.dataframe`` (staged into the table by the plan); the table
name (``schema/table`` for a qualified name). A query source without ``asset_key`` has no
upstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import dagster as dg
from sqlalchemy.engine import make_url

from kizen_sync.config import ProjectConfig, SyncConfig

__all__ = ["AssetRole", "KizenSyncTranslator", "KizenSyncTranslatorData"]

#: The assets of one sync: its warehouse source, the dry-run plan, the records, the backfill.
AssetRole = Literal["source", "plan", "sync", "backfill"]


@dataclass(frozen=True)
class KizenSyncTranslatorData:
    """What the translator knows about one asset of one sync.

    Attributes:
        sync: the sync, as validated from the sync file.
        role: which of the sync's assets this is.
        project: the whole sync file (warehouse URL, Kizen connection).
        dbt_manifest: the parsed dbt ``manifest.json``, when the code location was given one.
    """

    sync: SyncConfig
    role: AssetRole
    project: ProjectConfig
    dbt_manifest: Mapping[str, Any] | None = None

    def as_role(self, role: AssetRole) -> KizenSyncTranslatorData:
        """The same sync seen as another of its assets."""
        return replace(self, role=role)


def _dbt_node(manifest: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") in ("model", "seed", "snapshot") and node.get("name") == model:
            return node
    return None


class KizenSyncTranslator:
    """Turns the assets of a sync into ``AssetSpec``s; override any method to customise."""

    def get_asset_spec(self, data: KizenSyncTranslatorData) -> dg.AssetSpec:
        """The whole spec of one asset, built from the ``get_*`` methods below."""
        return dg.AssetSpec(
            key=self.get_asset_key(data),
            deps=self.get_deps(data),
            description=self.get_description(data),
            group_name=self.get_group_name(data),
            owners=self.get_owners(data),
            tags=self.get_tags(data),
            kinds=self.get_kinds(data),
            metadata=self.get_metadata(data),
        )

    # --- keys and lineage --------------------------------------------------------------------

    def get_asset_key(self, data: KizenSyncTranslatorData) -> dg.AssetKey:
        """``kizen/<sync>_plan``, ``kizen/<sync>``, ``kizen/<sync>_backfill``, or the source's."""
        name = data.sync.name
        if data.role == "source":
            key = self.get_source_asset_key(data)
            if key is None:
                raise ValueError(f"sync {name!r} reads a query and names no source.asset_key")
            return key
        suffix = {"plan": "_plan", "sync": "", "backfill": "_backfill"}[data.role]
        return dg.AssetKey(["kizen", f"{name}{suffix}"])

    def get_source_asset_key(self, data: KizenSyncTranslatorData) -> dg.AssetKey | None:
        """The key of the asset that feeds the sync, or None (a query without ``asset_key``)."""
        source = data.sync.source
        if source.dataframe:
            return dg.AssetKey(source.dataframe.split("/"))
        if source.asset_key:
            return dg.AssetKey(source.asset_key.split("/"))
        if source.dbt_model:
            if data.dbt_manifest is not None:
                return self.get_dbt_asset_key(data.dbt_manifest, source.dbt_model)
            return dg.AssetKey([source.dbt_model])
        if source.table:
            return dg.AssetKey(source.table.split("."))
        return None

    def get_dbt_asset_key(self, manifest: Mapping[str, Any], model: str) -> dg.AssetKey:
        """The key dagster-dbt gives ``model`` (``DagsterDbtTranslator.get_asset_key``)."""
        from dagster_dbt import DagsterDbtTranslator  # optional extra: kizen-sync[dbt]

        node = _dbt_node(manifest, model)
        if node is None:
            known = sorted(
                n["name"]
                for n in manifest.get("nodes", {}).values()
                if n.get("resource_type") == "model"
            )
            raise ValueError(
                f"the dbt manifest has no model {model!r} (models: {', '.join(known)})"
            )
        return DagsterDbtTranslator().get_asset_key(node)

    def declares_source(self, data: KizenSyncTranslatorData) -> bool:
        """Whether the sync's code location defines the source asset itself.

        A key derived from the table is declared here (an external asset describing the
        table). A key named in the file (``asset_key`` or ``dbt_model``) belongs to whoever
        builds that table, a dbt project or a Dagster asset elsewhere, so it is only depended on.
        """
        source = data.sync.source
        return (
            source.table is not None
            and not source.asset_key
            and not source.dbt_model
            and not source.dataframe
        )

    def get_deps(self, data: KizenSyncTranslatorData) -> Sequence[dg.AssetKey]:
        """Source -> plan -> records; source -> backfill."""
        if data.role == "source":
            return []
        if data.role == "sync":
            return [self.get_asset_key(data.as_role("plan"))]
        source = self.get_source_asset_key(data)
        return [source] if source is not None else []

    # --- catalogue -----------------------------------------------------------------------------

    def get_group_name(self, data: KizenSyncTranslatorData) -> str | None:
        """The sync file's ``group`` (default ``kizen``) for every asset of the sync."""
        return data.sync.group

    def get_owners(self, data: KizenSyncTranslatorData) -> Sequence[str]:
        """The sync file's ``owners``."""
        return list(data.sync.owners)

    def get_tags(self, data: KizenSyncTranslatorData) -> Mapping[str, str]:
        """``kizen_sync/sync`` and ``kizen_sync/object``, to filter the catalogue by."""
        if data.role == "source":
            return {"kizen_sync/source_of": data.sync.name}
        return {"kizen_sync/sync": data.sync.name, "kizen_sync/object": data.sync.object}

    def get_kinds(self, data: KizenSyncTranslatorData) -> set[str]:
        """The warehouse's dialect, plus ``kizen`` for the assets that talk to Kizen."""
        dialect = make_url(data.project.warehouse.url).get_backend_name()
        warehouse = {"postgresql": "postgres"}.get(dialect, dialect)
        return {warehouse} if data.role == "source" else {"kizen", warehouse}

    def get_metadata(self, data: KizenSyncTranslatorData) -> Mapping[str, Any]:
        """Definition metadata: the object, source, key, mode, schedule and thresholds."""
        sync = data.sync
        if data.role == "source":
            return {"table": sync.source.table or "", "feeds": f"kizen/{sync.name}"}
        return {
            "kizen_object": sync.object,
            "source": sync.source.table or sync.source.query,
            "primary_key": ", ".join(sync.source.primary_key),
            "mode": sync.mode,
            "schedule": sync.schedule or "none (on demand)",
            "failure_threshold": sync.failure_threshold,
            "max_archive_fraction": sync.delete.max_archive_fraction,
        }

    def get_description(self, data: KizenSyncTranslatorData) -> str:
        """A first sentence that tells the assets of a sync apart, then the details."""
        sync = data.sync
        source = f"table `{sync.source.table}`" if sync.source.table else "its SQL query"
        if sync.source.dataframe:
            source = f"the DataFrame of `{sync.source.dataframe}` (staged in `{sync.source.table}`)"
        about = f"\n\n{sync.description}" if sync.description else ""
        if data.role == "source":
            return (
                f"Warehouse table `{sync.source.table}`, the source of Kizen sync `{sync.name}` "
                f"(object `{sync.object}`). Declared by kizen-sync so that the sync has an "
                "upstream; set `source.asset_key` in the sync file to point at the asset that "
                f"builds this table instead.{about}"
            )
        if data.role == "plan":
            return (
                f"Dry-run plan of sync `{sync.name}`: what the next run would send to Kizen. "
                f"Compares {source} with what Kizen last confirmed (the state table) and counts "
                "the records to create, update (only the changed fields) and archive. Sends "
                "nothing and writes no state. Its guards (mass archive, reject rate) show "
                f"whether `kizen/{sync.name}` would be allowed to write.{about}"
            )
        if data.role == "sync":
            return (
                f"Kizen `{sync.object}` records kept in step with {source} by sync "
                f"`{sync.name}`. Each run sends only new and changed rows (one PATCH per record, "
                "add_values / remove_values for multi-valued fields) and archives records whose "
                "rows were deleted, after the pre-flight guards. Every run, failed or not, "
                "records its counts and the open failures (grouped by reason, with source keys, "
                "Kizen ids and messages) on this asset; failed records are re-sent by the next "
                f"run, or now by job `{sync.name}_retry_failed`. Run config: dry_run, "
                f"full_refresh, max_records.{about}"
            )
        slicing = (
            f"`{sync.source.cursor_column}` ({sync.partitions.granularity} windows that hold "
            "rows, recorded by the sync's runs)"
            if sync.source.cursor_column
            else f"primary-key hash bucket (of {sync.partitions.buckets})"
        )
        return (
            f"Backfill of sync `{sync.name}`, one partition per {slicing}. A partition compares "
            "every row of its slice with what Kizen last confirmed and sends only the fields "
            "that differ; its counts add up to the rows of the partition. Launch it from the "
            "UI (Materialize, then pick partitions). Rows deleted from the source are "
            f"archived by the incremental `kizen/{sync.name}`, which sees the whole table.{about}"
        )
