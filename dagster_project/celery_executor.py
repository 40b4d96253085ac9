"""dagster-celery's executor, plus the pool waits in the run's log.

``dagster_celery.celery_executor`` claims pool slots like every Dagster executor, but unlike the
in-process and multiprocess executors its loop never reports a step that waits for one: a run
whose apply step queues behind another run's ``kizen_api/...`` slot shows nothing for minutes.
This executor is dagster-celery's own (same config, same workers, same tasks) with one
addition: on every tick of its loop, each step still waiting for a slot gets Dagster's standard
"Step blocked by limit for pool ..." event (the in-process executor's message, repeated at
Dagster's usual interval while the wait lasts).

It leans on two Dagster internals (``ExecutionPlan.start`` and ``ActiveExecution``), which is
why the ``dagster`` extra is pinned to one minor release.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor

__all__ = ["celery_executor"]


class _ActiveExecutionReportingPools(ActiveExecution):
    """Adds the pool-wait events to the events the Celery loop yields every tick."""

    def plan_events_iterator(self, job_context: Any) -> Iterator[dg.DagsterEvent]:
        yield from super().plan_events_iterator(job_context)
        yield from self.concurrency_event_iterator(job_context)


class _PlanReportingPools(ExecutionPlan):
    """The same plan; its active execution reports pool waits."""

    def start(  # type: ignore[override]
        self,
        retry_mode: RetryMode,
        sort_key_fn: Callable[[Any], float] | None = None,
        max_concurrent: int | None = None,
        tag_concurrency_limits: list[dict[str, Any]] | None = None,
        instance_concurrency_context: Any = None,
        **kwargs: Any,
    ) -> ActiveExecution:
        return _ActiveExecutionReportingPools(
            self,
            retry_mode,
            sort_key_fn,
            max_concurrent,
            tag_concurrency_limits,
            instance_concurrency_context=instance_concurrency_context,
            **kwargs,
        )


class _CeleryExecutorReportingPools(CeleryExecutor):
    def execute(self, plan_context: Any, execution_plan: ExecutionPlan) -> Any:
        return super().execute(plan_context, _PlanReportingPools(*execution_plan))


@dg.executor(
    name="celery",
    config_schema=CELERY_CONFIG,
    requirements=dg.multiple_process_executor_requirements(),
)
def celery_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """dagster-celery's ``celery_executor`` whose runs log their pool waits."""
    config = init_context.executor_config
    return _CeleryExecutorReportingPools(
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),  # type: ignore[arg-type]
    )
