"""``KizenSyncComponent``: the syncs of one sync file, declared in a ``dg`` project's YAML.

In a project scaffolded by ``create-dagster``, add a folder under ``defs/`` with this
``defs.yaml``::

    type: dagster_project.component.KizenSyncComponent
    attributes:
      sync_file: syncs.yaml                 # relative to the project root
      dbt_manifest: dbt/target/manifest.json  # optional: syncs naming source.dbt_model
      backfill_policy: multi_run            # or single_run
      translation:                          # optional, per asset (template vars: data)
        group_name: crm
        owners: ["team:crm"]

``dg list defs`` then shows every sync's source, plan, records and backfill assets, its checks,
jobs and schedule; ``dg dev`` serves them. Everything is built by
:func:`dagster_project.build.build_definitions`, the same function the repository's own code
location uses, so a sync behaves the same wherever it is declared. In Python, subclass the
component and override :meth:`KizenSyncComponent.get_translator` to change keys, groups, tags,
owners or descriptions in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import Field

from dagster_project.build import build_definitions
from dagster_project.settings import BACKFILL_POLICIES, backfill_policy_from_env, sync_file_path
from dagster_project.translator import KizenSyncTranslator, KizenSyncTranslatorData

__all__ = ["KizenSyncComponent"]


class _TranslationFnTranslator(KizenSyncTranslator):
    """The default translator, then the component's YAML ``translation`` on top."""

    def __init__(
        self, base: KizenSyncTranslator, fn: TranslationFn[KizenSyncTranslatorData]
    ) -> None:
        self.base = base
        self.fn = fn

    def get_asset_spec(self, data: KizenSyncTranslatorData) -> dg.AssetSpec:
        return self.fn(self.base.get_asset_spec(data), data)

    def get_source_asset_key(self, data: KizenSyncTranslatorData) -> dg.AssetKey | None:
        return self.base.get_source_asset_key(data)

    def declares_source(self, data: KizenSyncTranslatorData) -> bool:
        return self.base.declares_source(data)


class KizenSyncComponent(dg.Component, dg.Model, dg.Resolvable):
    """Keeps Kizen CRM records in step with warehouse tables, one sync file at a time.

    Each sync of the file gets a source asset (its table, or the asset named by
    ``source.asset_key`` / ``source.dbt_model``), a dry-run plan with guard checks, the synced
    records asset, a partitioned backfill asset, a sync job, a retry job and, when the file
    gives a cron, a schedule (created stopped).
    """

    sync_file: str | None = Field(
        default=None,
        description="The sync file, relative to the project root. Default: "
        "$KIZEN_SYNC_CONFIG, else the demo's .demo/syncs.yaml.",
    )
    dbt_manifest: str | None = Field(
        default=None,
        description="A dbt manifest.json (relative to the project root), so that syncs naming "
        "source.dbt_model depend on that model's asset. Needs kizen-sync[dbt].",
    )
    backfill_policy: Literal["multi_run", "single_run"] | None = Field(
        default=None,
        description="multi_run: one run per partition; single_run: one run per backfill. "
        "Default: $KIZEN_SYNC_BACKFILL_POLICY, else multi_run.",
    )
    translation: Annotated[
        TranslationFn[KizenSyncTranslatorData] | None,
        TranslationFnResolver[KizenSyncTranslatorData](
            template_vars_for_translation_fn=lambda data: {"data": data}
        ),
    ] = Field(
        default=None,
        description="Asset attributes to override on every asset (key, group_name, owners, "
        "tags, description, ...); templates see `data.sync` (the sync) and `data.role` "
        "(source, plan, sync or backfill).",
    )

    def get_translator(self) -> KizenSyncTranslator:
        """The translator of this component; override in a subclass to customise in code."""
        return KizenSyncTranslator()

    def _path(self, context: dg.ComponentLoadContext, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else context.project_root / path

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """Everything the sync file declares, as one ``dg.Definitions``."""
        sync_file = self._path(context, self.sync_file) if self.sync_file else sync_file_path()
        translator = self.get_translator()
        if self.translation is not None:
            translator = _TranslationFnTranslator(translator, self.translation)
        policy = (
            BACKFILL_POLICIES[self.backfill_policy]
            if self.backfill_policy
            else backfill_policy_from_env()
        )
        manifest: Any = self._path(context, self.dbt_manifest) if self.dbt_manifest else None
        return build_definitions(
            sync_file, backfill_policy=policy, translator=translator, dbt_manifest=manifest
        )
