"""The assets of one sync: its plan, the incremental apply, and the partitioned backfill.

Why three assets and not one partitioned asset: a scheduled incremental sync must diff the
*whole* source against ``sync_state`` in one pass (that is the only way hard-deleted rows are
seen, and it is cheap: only changed rows leave the warehouse), while a backfill re-sends one
slice with every field compared. A single partitioned asset would make every scheduled run
fan out over hundreds of partitions, or record a partition-less run as if it were a partition.
So ``kizen/<sync>`` is unpartitioned (scheduled, gated by ``kizen/<sync>_plan``) and
``kizen/<sync>_backfill`` is partitioned (launched from the UI); both call the same
:class:`~kizen_sync.engine.runner.SyncRunner`, whose own pre-flight guards protect every run,
including the ones that do not go through the plan asset.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
from sqlalchemy.engine import make_url

from dagster_project.checks import (
    build_failures_left_open_check,
    failure_rate_result,
    failure_rate_spec,
    guard_results,
    guard_specs,
)
from dagster_project.metadata import OPEN_FAILURES_SHOWN, plan_metadata, run_metadata
from dagster_project.partitions import partition_for_key, partitions_for
from dagster_project.resources import KizenResource, WarehouseResource, open_runner
from dagster_project.run_config import BackfillRunConfig, SyncRunConfig
from kizen_sync.config import ProjectConfig, SyncConfig
from kizen_sync.engine.runner import SyncRunner
from kizen_sync.errors import FatalError
from kizen_sync.models import RunCounts, RunOptions, RunReport

__all__ = ["KIZEN_POOL", "SyncAssets", "asset_keys", "build_sync_assets"]

#: Dagster pool shared by every step that writes to Kizen: one rate limit across runs.
KIZEN_POOL = "kizen_api"
_SAMPLE = 20


@dataclass(frozen=True)
class SyncAssets:
    """Everything Dagster shows for one sync, ready for ``dg.Definitions``."""

    sync: SyncConfig
    plan: dg.AssetsDefinition
    apply: dg.AssetsDefinition
    backfill: dg.AssetsDefinition
    checks: tuple[dg.AssetChecksDefinition, ...]


def asset_keys(sync: SyncConfig) -> tuple[dg.AssetKey, dg.AssetKey, dg.AssetKey]:
    """Keys of the plan, apply and backfill assets of ``sync``."""
    return (
        dg.AssetKey(["kizen", f"{sync.name}_plan"]),
        dg.AssetKey(["kizen", sync.name]),
        dg.AssetKey(["kizen", f"{sync.name}_backfill"]),
    )


def _source(sync: SyncConfig) -> str:
    return f"table {sync.source.table}" if sync.source.table else "its SQL query"


def _failure(sync: SyncConfig, error: FatalError) -> dg.Failure:
    """A step failure naming the sync, with the error's numbers (guard counts) as metadata."""
    numbers = {k: v for k, v in error.context.items() if isinstance(v, int | float | str)}
    return dg.Failure(
        description=error.message,
        metadata={**numbers, "sync": sync.name, "error_class": error.error_class},
        allow_retries=False,
    )


def _run(runner: SyncRunner, sync: SyncConfig, options: RunOptions) -> RunReport:
    try:
        return runner.run(sync.name, options)
    except FatalError as error:
        raise _failure(sync, error) from error


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


def _outcome(
    runner: SyncRunner, sync: SyncConfig, report: RunReport
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Materialize with the run's metadata, or fail the step when too many records failed.

    Per-record failures below the threshold only show in the metadata and the checks.
    """
    metadata = run_metadata(report, sync, runner.open_failures(sync.name, OPEN_FAILURES_SHOWN))
    check = failure_rate_result(sync, report)
    if report.status == "failed":
        yield check
        raise dg.Failure(
            description=report.message,
            metadata={"sync": sync.name, **metadata},
            allow_retries=False,
        )
    yield dg.MaterializeResult(metadata=metadata, check_results=[check])


def _kinds(project: ProjectConfig) -> set[str]:
    dialect = make_url(project.warehouse.url).get_backend_name()
    return {"kizen", {"postgresql": "postgres"}.get(dialect, dialect)}


def _definition_metadata(sync: SyncConfig) -> dict[str, Any]:
    return {
        "kizen_object": sync.object,
        "source": sync.source.table or sync.source.query,
        "primary_key": ", ".join(sync.source.primary_key),
        "mode": sync.mode,
        "schedule": sync.schedule,
        "failure_threshold": sync.failure_threshold,
        "max_archive_fraction": sync.delete.max_archive_fraction,
    }


def build_sync_assets(
    project: ProjectConfig, sync: SyncConfig, backfill_policy: dg.BackfillPolicy | None
) -> SyncAssets:
    """The plan, apply and backfill assets of ``sync`` with their checks."""
    plan_key, apply_key, backfill_key = asset_keys(sync)
    common: dict[str, Any] = {
        "group_name": sync.group,
        "kinds": _kinds(project),
        "owners": sync.owners,
        "metadata": _definition_metadata(sync),
    }
    about = f"{sync.description}\n\n" if sync.description else ""
    partitions_def = partitions_for(sync)

    @dg.asset(
        key=plan_key,
        description=(
            f"{about}Dry run of sync `{sync.name}`: compares {_source(sync)} with what Kizen "
            f"last confirmed (the state table) and counts what the next `kizen/{sync.name}` "
            "would do: new rows are created, changed rows (a mapped column differs from the "
            "value Kizen confirmed) are updated, sending only the changed fields, and records "
            "whose rows are gone are archived. Sends nothing and writes no state. Its blocking "
            "guards stop the apply when too much would be archived or rejected."
        ),
        check_specs=guard_specs(sync, plan_key),
        **common,
    )
    def plan(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, kizen: KizenResource
    ) -> dg.MaterializeResult:
        options = RunOptions(dry_run=True, run_id=context.run_id)
        with open_runner(project, warehouse, kizen, context.log) as runner:
            try:
                guard = runner.check_guards(sync.name, options)
                report = runner.plan(sync.name, options)
            except FatalError as error:
                raise _failure(sync, error) from error
        return dg.MaterializeResult(
            metadata=plan_metadata(report, guard, sync), check_results=guard_results(sync, guard)
        )

    @dg.asset(
        key=apply_key,
        deps=[plan_key],
        pool=KIZEN_POOL,
        description=(
            f"{about}Kizen `{sync.object}` records kept in step with {_source(sync)}. Each "
            "run sends only new and changed rows (one PATCH per record by id, add_values / "
            "remove_values for multi-valued fields) and archives records whose rows were "
            "deleted; scheduled runs go through the guards of the plan asset first. Every "
            "attempt is written to the audit table in the warehouse; records that fail do not "
            "fail the run (unless more than failure_threshold do): they are listed in "
            "`open_failures`, re-sent on the next run, or now by job "
            f"`{sync.name}_retry_failed`. Run config: dry_run, full_refresh, max_records."
        ),
        check_specs=[failure_rate_spec(sync, apply_key)],
        **common,
    )
    def apply(
        context: dg.AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        kizen: KizenResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with open_runner(project, warehouse, kizen, context.log) as runner:
            report = _run(runner, sync, config.options(context.run_id))
            yield from _outcome(runner, sync, report)

    slicing = (
        f"the rows whose `{sync.source.cursor_column}` falls in the partition's "
        f"{sync.partitions.granularity} window"
        if sync.source.cursor_column
        else f"the rows whose primary key hashes to the partition's bucket (of "
        f"{sync.partitions.buckets})"
    )

    @dg.asset(
        key=backfill_key,
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        pool=KIZEN_POOL,
        description=(
            f"{about}Backfill of sync `{sync.name}`: re-syncs exactly {slicing}, comparing "
            "every mapped field with Kizen's confirmed values (full refresh) and sending what "
            "differs. Audit rows carry the partition key. Launch it from the UI (Materialize, "
            "then pick partitions). Guarded by the same pre-flight checks as every run. Rows "
            "deleted from the source are archived by the incremental "
            f"`kizen/{sync.name}`, which sees the whole table."
        ),
        check_specs=[failure_rate_spec(sync, backfill_key)],
        **common,
    )
    def backfill(
        context: dg.AssetExecutionContext,
        config: BackfillRunConfig,
        warehouse: WarehouseResource,
        kizen: KizenResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        keys = context.partition_keys
        with open_runner(project, warehouse, kizen, context.log) as runner:
            reports = []
            for key in keys:
                # The audit run id is the Dagster run id; a run over several partitions
                # suffixes it per partition, since the runs table holds one row per run id.
                run_id = context.run_id if len(keys) == 1 else f"{context.run_id}:{key}"
                partition = partition_for_key(sync, partitions_def, key)
                reports.append(_run(runner, sync, config.options(run_id, partition)))
            yield from _outcome(runner, sync, _combine(reports, context.run_id))

    return SyncAssets(
        sync=sync,
        plan=plan,
        apply=apply,
        backfill=backfill,
        checks=(build_failures_left_open_check(sync, apply_key),),
    )
