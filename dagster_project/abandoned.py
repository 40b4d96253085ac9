"""Rows of the runs table whose run is over in Dagster but never finished its row.

A step killed mid-apply (a Celery worker lost, ``kill -9``, a node gone) never reaches the
code that writes its run's final status, so its row in ``kizen_sync_runs`` says ``running``
for ever. Only Dagster knows that such a run is over. So every sync step, before it starts,
asks the instance about the runs of its sync that still say ``running``, and marks those whose
Dagster run has ended ``abandoned``. Rows of runs Dagster does not know (CLI runs) and of runs
still in progress are left alone. Nothing is lost with the row: what Kizen confirmed is in the
state table, and the next run re-sends the rest.
"""

import logging

import dagster as dg

from kizen_sync.warehouse.state import StateStore

__all__ = ["mark_abandoned_runs"]


def mark_abandoned_runs(
    instance: dg.DagsterInstance,
    store: StateStore,
    sync: str,
    current_run_id: str,
    log: logging.Logger,
) -> list[str]:
    """Mark the rows of ``sync``'s ended Dagster runs that still say ``running``.

    Run ids of single-run backfills carry a ``:<partition>`` suffix; the Dagster run id is
    what precedes it.

    Returns:
        The run ids marked ``abandoned``.
    """
    marked = []
    for run_id in store.running_runs(sync):
        dagster_id = run_id.split(":", 1)[0]
        if dagster_id == current_run_id:
            continue  # this run's own step, restarted (a Celery redelivery): it rewrites the row
        run = instance.get_run_by_id(dagster_id)
        if run is None or not run.is_finished:
            continue
        reason = (
            f"abandoned: Dagster run {dagster_id} ended {run.status.value} before this row was "
            "finished (its process was killed); confirmed records are in the state table, "
            "the rest were re-sent by a later run"
        )
        if store.mark_abandoned([run_id], reason):
            log.warning(f"Run {run_id} of sync {sync} was left running in the runs table; {reason}")
            marked.append(run_id)
    return marked
