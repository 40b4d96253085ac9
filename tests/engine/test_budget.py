"""The guards hold for what is actually sent, whatever pass of the source produced it.

A plan too large to keep in memory is streamed from the warehouse a second time for the
apply. A source emptied between the two passes (an ETL reload: delete, then insert) once
archived every record and reported success. The reload is played here by a SQLAlchemy
listener that deletes the source rows right before the apply's second read of the source,
so the moment is exact whatever the machine's speed. Kizen is read back from the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from kizen_sync.engine import runner as runner_module
from kizen_sync.errors import GuardError
from tests.support.contacts import Contacts, contacts_world

ROWS = 120


@pytest.fixture
def world(db: Any) -> Iterator[Contacts]:
    with contacts_world(db) as contacts:
        yield contacts


def people(version: str) -> list[tuple[int, str, str]]:
    return [(i, f"p{i}@example.com", f"{version}{i}") for i in range(1, ROWS + 1)]


#: Statement markers: the run row is written between the plan and the apply; the change
#: stream reads the source (the apply's read comes after the run row).
RUN_ROW = "INSERT INTO"
STREAM = " AS kind"


def _meanwhile(world: Contacts, sql: str, *, before: str) -> None:
    """Run ``sql`` on another connection, once, after the run row was written (the plan is
    done): right before the next statement when ``before`` is :data:`RUN_ROW`, or right
    before the apply's first read of the changes when ``before`` is :data:`STREAM`.
    """
    engine = world.db.warehouse.engine
    state = {"run_row": False, "done": False}
    qualifier = f'"{world.db.schema}".' if world.db.schema else ""

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if state["done"]:
            return
        if statement.startswith(RUN_ROW) and "kizen_sync_runs" in statement:
            state["run_row"] = True
            return
        if not state["run_row"] or (before is STREAM and STREAM not in statement):
            return
        state["done"] = True
        with engine.connect() as other:
            other.execute(text(sql.replace("{s}", qualifier)))
            other.commit()

    event.listen(engine, "before_cursor_execute", listen)


def _archived(world: Contacts) -> list[str]:
    return [e for e, records in world.kizen().items() if any(r["archived"] for r in records)]


def test_a_source_emptied_between_plan_and_apply_archives_nothing_beyond_the_budget(
    world: Contacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.source(people("First"))
    with world.runner() as runner:
        assert runner.run("people").counts.created == ROWS
    world.source(people("Second"))  # every row changes: 120 updates planned, no archive
    monkeypatch.setattr(runner_module, "PLAN_IN_MEMORY", 10)  # the plan is streamed twice
    _meanwhile(world, "DELETE FROM {s}people", before=STREAM)
    with world.runner() as runner, pytest.raises(GuardError) as caught:
        runner.run("people")
    assert "stopped during the apply" in caught.value.message
    assert "max_archive_fraction" in caught.value.message
    # What the guard allows (5 % of 120) at most, never the whole table.
    assert len(_archived(world)) <= ROWS * 0.05
    assert len(world.kizen()) == ROWS
    runs = world.store().run_summaries("people")
    assert runs[0]["status"] == "failed"
    assert "stopped" in runs[0]["message"]
    # The reload completes; the next run puts every record back in step.
    world.source(people("Second"))
    with world.runner() as runner:
        report = runner.run("people")
    assert report.status == "success"
    assert world.live() == {f"p{i}@example.com": f"Second{i}" for i in range(1, ROWS + 1)}


def test_a_source_emptied_after_the_plan_is_stopped_before_the_apply_sends_anything(
    world: Contacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.source(people("First"))
    with world.runner() as runner:
        runner.run("people")
    world.source(people("Second"))
    monkeypatch.setattr(runner_module, "PLAN_IN_MEMORY", 10)
    writes = world.writes()
    _meanwhile(world, "DELETE FROM {s}people", before=RUN_ROW)
    with world.runner() as runner, pytest.raises(GuardError, match="would archive 120 of 120") as e:
        runner.run("people")
    assert "after the plan was checked" in e.value.message  # says the source changed mid-run
    assert world.writes() == writes  # not one request
    assert _archived(world) == []


def test_a_mapping_broken_between_plan_and_apply_stops_at_the_reject_budget(
    world: Contacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.source(people("First"))
    with world.runner() as runner:
        runner.run("people")
    world.source(people("Second"))
    monkeypatch.setattr(runner_module, "PLAN_IN_MEMORY", 10)
    # Three rows in four get an e-mail Kizen cannot take, after the plan was checked.
    _meanwhile(
        world,
        "UPDATE {s}people SET email = 'not-an-email' WHERE id % 4 <> 0",
        before=STREAM,
    )
    with world.runner() as runner, pytest.raises(GuardError) as caught:
        runner.run("people")
    assert "max_reject_rate" in caught.value.message
    assert "stopped during the apply" in caught.value.message
    # Nothing broken reached Kizen, and the stop came before the end of the stream.
    live = world.live()
    assert not [e for e in live if "@" not in e]
    assert sum(1 for first in live.values() if first and first.startswith("Second")) < ROWS // 4
