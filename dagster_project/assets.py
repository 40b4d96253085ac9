"""The assets of one sync: its source, its plan, the incremental apply, the partitioned backfill.

Why three sync assets and not one partitioned asset: a scheduled incremental sync must diff
the *whole* source against ``sync_state`` in one pass (that is the only way hard-deleted rows
are seen, and it is cheap: only changed rows leave the warehouse), while a backfill re-sends
one slice with every field compared. A single partitioned asset would make every scheduled
run fan out over hundreds of partitions, or record a partition-less run as if it were a
partition. So ``kizen/<sync>`` is unpartitioned (scheduled, after ``kizen/<sync>_plan``) and
``kizen/<sync>_backfill`` is partitioned (launched from the UI); both call the same
:class:`~kizen_sync.engine.runner.SyncRunner`, whose own pre-flight guards protect every run.

Every run of ``kizen/<sync>`` leaves its outcome on the asset: a materialization when it
succeeds, an observation with the same metadata (counts, open failures grouped by reason, how
to retry) when it fails, before the step fails. The asset page therefore always shows the
last run's failed records, not the previous success's.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_project.checks import (
    failure_rate_result,
    failure_rate_spec,
    failures_left_open_result,
    failures_left_open_spec,
    guard_results,
    guard_specs,
    stopped_failure_rate_result,
)
from dagster_project.metadata import (
    failures_metadata,
    plan_metadata,
    run_metadata,
)
from dagster_project.partitions import partition_for_key, partitions_for, record_partitions
from dagster_project.pools import kizen_pool
from dagster_project.resources import KizenResource, WarehouseResource, open_runner
from dagster_project.run_config import BackfillRunConfig, SyncRunConfig
from dagster_project.translator import AssetRole, KizenSyncTranslator, KizenSyncTranslatorData
from kizen_sync.config import ProjectConfig, SyncConfig
from kizen_sync.engine.runner import SyncRunner
from kizen_sync.errors import FatalError, LeaseHeldError
from kizen_sync.models import RunCounts, RunOptions, RunReport

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SyncAssets", "build_sync_assets", "sync_specs"]

_SAMPLE = 20
_ROLES: tuple[AssetRole, ...] = ("source", "plan", "sync", "backfill")


@dataclass(frozen=True)
class SyncAssets:
    """Everything Dagster shows for one sync, ready for ``dg.Definitions``.

    ``source`` is the external asset describing the source table, when this code location
    declares it (see :meth:`KizenSyncTranslator.declares_source`).
    """

    sync: SyncConfig
    specs: Mapping[AssetRole, dg.AssetSpec]
    source: dg.AssetSpec | None
    plan: dg.AssetsDefinition
    apply: dg.AssetsDefinition
    backfill: dg.AssetsDefinition

    @property
    def keys(self) -> list[dg.AssetKey]:
        """Keys of the plan, records and backfill assets."""
        return [self.specs[role].key for role in _ROLES if role != "source"]


def sync_specs(
    translator: KizenSyncTranslator, data: KizenSyncTranslatorData
) -> dict[AssetRole, dg.AssetSpec]:
    """The translated specs of a sync's assets, with dependencies on the translated keys.

    The translator may rename any key, so the dependencies its default specs name (the
    default keys) are mapped onto the keys it actually returned.
    """
    has_source = translator.get_source_asset_key(data) is not None
    roles = [r for r in _ROLES if r != "source" or has_source]
    default = KizenSyncTranslator()
    specs = {role: translator.get_asset_spec(data.as_role(role)) for role in roles}
    renamed = {default.get_asset_key(data.as_role(r)): specs[r].key for r in roles}
    return {
        role: spec.replace_attributes(
            deps=[renamed.get(dep.asset_key, dep.asset_key) for dep in spec.deps]
        )
        for role, spec in specs.items()
    }


def _failure_metadata(sync: SyncConfig, error: FatalError) -> dict[str, Any]:
    numbers = {k: v for k, v in error.context.items() if isinstance(v, int | float | str)}
    return {**numbers, "sync": sync.name, "error_class": error.error_class}


def _combine(reports: list[RunReport], run_id: str) -> RunReport:
    """One report for a run over several partitions (single-run backfills)."""
    if len(reports) == 1:
        return reports[0]
    totals = RunCounts()
    for report in reports:
        for name, value in report.counts.as_dict().items():
            setattr(totals, name, getattr(totals, name) + value)
    failed = [r for r in reports if r.status == "failed"]
    return RunReport(
        run_id=run_id,
        sync=reports[0].sync,
        partition_key=f"{reports[0].partition_key}...{reports[-1].partition_key}",
        status="failed" if failed else reports[0].status,
        counts=totals,
        started_at=min(r.started_at for r in reports),
        finished_at=max(r.finished_at for r in reports),
        planned=sum(r.planned for r in reports),
        requests=sum(r.requests for r in reports),
        failures=[f for r in reports for f in r.failures][:_SAMPLE],
        message=" ".join(r.message for r in failed),
        parked=sum(r.parked for r in reports),
        parked_since=min((r.parked_since for r in reports if r.parked_since), default=None),
        known_failed=sum(r.known_failed for r in reports),
    )


@dataclass(frozen=True)
class _Builder:
    """Builds the three sync assets of one sync from its translated specs."""

    project: ProjectConfig
    sync: SyncConfig
    specs: Mapping[AssetRole, dg.AssetSpec]
    sync_file: str | None

    def open_failures(self, runner: SyncRunner) -> list[dict[str, Any]]:
        """Every open failure of the sync (newest first, parked ones flagged): the counts,
        the groups by reason and the "failed in 3+ runs" check are true totals; the tables
        show the newest ``OPEN_FAILURES_SHOWN``.
        """
        return runner.failure_listing(self.sync.name, limit=None).rows

    def partitions_metadata(
        self, context: dg.AssetExecutionContext, runner: SyncRunner
    ) -> dict[str, Any]:
        """Record the windows that hold rows as partitions; say how many there are."""
        rows = record_partitions(context.instance, runner.warehouse, self.sync)
        if rows is None:
            return {}
        keys = list(rows)
        return {
            "partitions_with_rows": dg.MetadataValue.int(len(keys)),
            "partitions_span": f"{keys[0]} ... {keys[-1]}" if keys else "no rows",
        }

    def outcome(
        self,
        context: dg.AssetExecutionContext,
        runner: SyncRunner,
        report: RunReport,
        key: dg.AssetKey,
        extra: Mapping[str, Any],
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
        """Materialize with the run's metadata; on failure observe it, then fail the step."""
        sync = self.sync
        open_failures = self.open_failures(runner)
        metadata = {**run_metadata(report, sync, open_failures, self.sync_file), **extra}
        checks = [failure_rate_result(sync, report, self.sync_file)]
        if key == self.specs["sync"].key:
            checks.append(failures_left_open_result(sync, open_failures))
        if report.status != "failed":
            yield dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)
            return
        yield from checks
        yield dg.AssetObservation(
            asset_key=key,
            partition=context.partition_key if context.has_partition_key else None,
            description=f"Run failed: {report.message}",
            metadata={**metadata, "run_outcome": "failed"},
        )
        top = metadata.get("top_reasons")
        raise dg.Failure(
            description=report.message + (f"\nTop reasons:\n{top}" if top else ""),
            metadata={"sync": sync.name, **metadata},
            allow_retries=False,
        )

    def stopped(
        self,
        context: dg.AssetExecutionContext,
        runner: SyncRunner,
        error: FatalError,
        key: dg.AssetKey,
    ) -> Iterator[dg.AssetCheckResult | dg.AssetObservation]:
        """A run stopped before or during its writes (a guard, refused credentials): record
        why on the asset, with the open failures, evaluate the checks, then fail the step.
        """
        sync = self.sync
        open_failures = self.open_failures(runner)
        numbers = _failure_metadata(sync, error)
        yield stopped_failure_rate_result(sync, error.message)
        if key == self.specs["sync"].key:
            yield failures_left_open_result(sync, open_failures)
        yield dg.AssetObservation(
            asset_key=key,
            partition=context.partition_key if context.has_partition_key else None,
            description=f"Run stopped: {error.message}",
            metadata={
                **numbers,
                "run_outcome": "stopped",
                "reason": error.message,
                **failures_metadata(sync, open_failures, self.sync_file),
            },
        )
        raise dg.Failure(description=error.message, metadata=numbers, allow_retries=False)

    def plan(
        self,
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        kizen: KizenResource,
        frame: "pd.DataFrame | None" = None,
    ) -> dg.MaterializeResult:
        """Stage the DataFrame (a dataframe source), then check the guards and plan."""
        sync = self.sync
        options = RunOptions(dry_run=True, run_id=context.run_id)
        staged: dict[str, Any] = {}
        with open_runner(self.project, warehouse, kizen, context.log, self.sync_file) as runner:
            try:
                if frame is not None:
                    from kizen_sync.warehouse.stage import stage_frame  # pandas: see build_plan

                    rows = stage_frame(runner.warehouse, sync, frame)
                    staged = {"staged_rows": dg.MetadataValue.int(rows)}
                guard = runner.check_guards(sync.name, options)
                report = runner.plan(sync.name, options)
            except FatalError as error:
                raise dg.Failure(
                    description=error.message,
                    metadata=_failure_metadata(sync, error),
                    allow_retries=False,
                ) from error
            extra = self.partitions_metadata(context, runner)
        return dg.MaterializeResult(
            metadata={**plan_metadata(report, guard, sync), **staged, **extra},
            check_results=guard_results(sync, guard),
        )

    def build_plan(self) -> dg.AssetsDefinition:
        sync = self.sync
        spec = self.specs["plan"]
        checks = guard_specs(sync, spec.key)
        name = spec.key.to_python_identifier()
        if sync.source.dataframe is None:

            @dg.multi_asset(name=name, specs=[spec], check_specs=checks)
            def plan(
                context: dg.AssetExecutionContext,
                warehouse: WarehouseResource,
                kizen: KizenResource,
            ) -> dg.MaterializeResult:
                return self.plan(context, warehouse, kizen)

            return plan

        # A DataFrame source: its asset is loaded (through its IO manager) and staged here,
        # the one writer of the staging table; apply and backfill read what the plan staged.
        # pandas is imported only for such a sync: a code location without one, and each of its
        # run workers, starts about 0.3 s sooner without it.
        import pandas as pd

        frame_key = self.specs["source"].key

        @dg.multi_asset(
            name=name, specs=[spec], check_specs=checks, ins={"frame": dg.AssetIn(key=frame_key)}
        )
        def plan_frame(
            context: dg.AssetExecutionContext,
            warehouse: WarehouseResource,
            kizen: KizenResource,
            frame: pd.DataFrame,
        ) -> dg.MaterializeResult:
            return self.plan(context, warehouse, kizen, frame)

        return plan_frame

    def build_apply(self) -> dg.AssetsDefinition:
        sync, project = self.sync, self.project
        spec = self.specs["sync"]

        @dg.multi_asset(
            name=spec.key.to_python_identifier(),
            specs=[spec],
            check_specs=[
                failure_rate_spec(sync, spec.key),
                failures_left_open_spec(sync, spec.key),
            ],
            pool=kizen_pool(self.project.kizen),
        )
        def apply(
            context: dg.AssetExecutionContext,
            config: SyncRunConfig,
            warehouse: WarehouseResource,
            kizen: KizenResource,
        ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
            with open_runner(project, warehouse, kizen, context.log, self.sync_file) as runner:
                try:
                    report = runner.run(sync.name, config.options(context.run_id))
                except LeaseHeldError as error:
                    raise _retry_later(context, project, error) from error
                except FatalError as error:
                    yield from self.stopped(context, runner, error, spec.key)
                    return
                extra = self.partitions_metadata(context, runner)
                yield from self.outcome(context, runner, report, spec.key, extra)

        return apply

    def build_backfill(self, backfill_policy: dg.BackfillPolicy | None) -> dg.AssetsDefinition:
        sync, project = self.sync, self.project
        spec = self.specs["backfill"]

        @dg.multi_asset(
            name=spec.key.to_python_identifier(),
            specs=[spec],
            partitions_def=partitions_for(sync),
            backfill_policy=backfill_policy,
            check_specs=[failure_rate_spec(sync, spec.key)],
            pool=kizen_pool(self.project.kizen),
        )
        def backfill(
            context: dg.AssetExecutionContext,
            config: BackfillRunConfig,
            warehouse: WarehouseResource,
            kizen: KizenResource,
        ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
            keys = context.partition_keys
            with open_runner(project, warehouse, kizen, context.log, self.sync_file) as runner:
                reports = []
                for key in keys:
                    # The audit run id is the Dagster run id; a run over several partitions
                    # suffixes it per partition, since the runs table holds one row per run id.
                    run_id = context.run_id if len(keys) == 1 else f"{context.run_id}:{key}"
                    options = config.options(run_id, partition_for_key(sync, key))
                    try:
                        reports.append(runner.run(sync.name, options))
                    except FatalError as error:
                        yield from self.stopped(context, runner, error, spec.key)
                        return
                report = _combine(reports, context.run_id)
                extra: dict[str, Any] = {"partition_rows": dg.MetadataValue.int(_rows(report))}
                if _rows(report) == 0:
                    extra["empty"] = dg.MetadataValue.md(
                        "This partition holds no rows (they moved to other windows or were "
                        "deleted): nothing to compare, nothing sent."
                    )
                yield from self.outcome(context, runner, report, spec.key, extra)

        return backfill


#: Step retries of a sync whose lease another run holds: with waits of ``ttl_s / 2`` they
#: cover three lease lifetimes, long enough for a lease left by a lost worker to expire.
LEASE_RETRIES = 6


def _retry_later(
    context: dg.AssetExecutionContext, project: ProjectConfig, error: LeaseHeldError
) -> dg.RetryRequested:
    """Another run holds the sync (a CLI run, or the lease of a worker that was lost and not
    yet expired): nothing was sent, so the step is retried later instead of failing the run.
    """
    wait_s = max(1.0, project.warehouse.lease.ttl_s / 2)
    context.log.warning(
        f"{error.message} Retrying the step in {wait_s:.0f} s "
        f"(attempt {context.retry_number + 1} of {LEASE_RETRIES})."
    )
    return dg.RetryRequested(max_retries=LEASE_RETRIES, seconds_to_wait=wait_s)


def _rows(report: RunReport) -> int:
    """Rows of the source a run looked at: every outcome of every row counted once (parked
    rows, skipped because they failed before and have not changed, included).
    """
    c = report.counts
    return c.created + c.updated + c.unchanged + c.noop + c.failed + c.archived + report.parked


def build_sync_assets(
    project: ProjectConfig,
    sync: SyncConfig,
    backfill_policy: dg.BackfillPolicy | None,
    *,
    translator: KizenSyncTranslator | None = None,
    dbt_manifest: Mapping[str, Any] | None = None,
    sync_file: str | None = None,
) -> SyncAssets:
    """The source spec, the plan, apply and backfill assets of ``sync`` with their checks.

    Args:
        project: the whole sync file.
        sync: the sync to build.
        backfill_policy: None for one partition per run, or Dagster's single-run policy.
        translator: keys, groups, tags, owners and descriptions (default
            :class:`KizenSyncTranslator`).
        dbt_manifest: a parsed dbt manifest, for syncs that name ``source.dbt_model``.
        sync_file: the sync file's path as people should type it, for retry commands.
    """
    translator = translator or KizenSyncTranslator()
    data = KizenSyncTranslatorData(
        sync=sync, role="sync", project=project, dbt_manifest=dbt_manifest
    )
    specs = sync_specs(translator, data)
    builder = _Builder(project=project, sync=sync, specs=specs, sync_file=sync_file)
    declared = "source" in specs and translator.declares_source(data.as_role("source"))
    return SyncAssets(
        sync=sync,
        specs=specs,
        source=specs["source"] if declared else None,
        plan=builder.build_plan(),
        apply=builder.build_apply(),
        backfill=builder.build_backfill(backfill_policy),
    )
