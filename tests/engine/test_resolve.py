"""Re-keyed rows and identity collisions are resolved before any write (engine/resolve.py).

Two planned operations on one Kizen record in one run are caught before anything is sent: a
create whose e-mail belongs to a record the same run archives is a *re-key* (the record keeps
its id; its state moves to the new key: an update, not archive + create); two source keys
that resolve to one record (e-mails equal but for case, one record id in two rows) are a
*collision*: every row involved fails with an error naming the rows and the identifier, and
nothing is sent for them. Kizen is read back from the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kizen_sync.errors import GuardError
from tests.support.contacts import Contacts, contacts_world


@pytest.fixture
def world(db: Any) -> Iterator[Contacts]:
    with contacts_world(db) as contacts:
        yield contacts


def _failures(world: Contacts) -> dict[str, dict[str, Any]]:
    return {f["source_key"]: f for f in world.store().open_failures("people")}


@pytest.mark.parametrize("max_archive_fraction", [0.05, 1.0])
def test_a_re_keyed_table_updates_its_records_instead_of_archiving_them(
    world: Contacts, max_archive_fraction: float
) -> None:
    delete = {"archive": True, "max_archive_fraction": max_archive_fraction}
    world.source([(1, "ann@example.com", "Ann"), (2, "bob@example.com", "Bob")])
    with world.runner(delete=delete) as runner:
        runner.run("people")
    before = {e: r[0]["id"] for e, r in world.kizen().items()}
    # The same people under new primary keys (a reload that renumbered the table); Bob's
    # first name changed at the same time.
    world.source([(101, "ann@example.com", "Ann"), (102, "bob@example.com", "Robert")])
    writes = world.writes()
    with world.runner(delete=delete) as runner:
        report = runner.run("people")
    assert report.status == "success", report.message
    assert (report.counts.archived, report.counts.created) == (0, 0)
    assert report.planned == 1  # the old keys' dropped archives are no planned writes
    assert world.writes() - writes == 1  # one PATCH (Robert); Ann had nothing to send
    kizen = world.kizen()
    assert {e: [(r["id"], r["archived"]) for r in rs] for e, rs in kizen.items()} == {
        e: [(i, False)] for e, i in before.items()
    }
    assert world.live() == {"ann@example.com": "Ann", "bob@example.com": "Robert"}
    state = world.store().load_state("people", ["1", "2", "101", "102"])
    assert sorted(state) == ["101", "102"]
    assert state["101"].kizen_id == before["ann@example.com"]
    with world.runner(delete=delete) as runner:
        assert runner.plan("people").planned == 0  # in step, and stays so


def test_two_rows_whose_emails_differ_only_in_case_are_both_refused(world: Contacts) -> None:
    world.source(
        [
            (1, "ann@example.com", "Ann"),
            (2, "ANN@example.com", "Annie"),
            (3, "carl@example.com", "Carl"),
        ]
    )
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert report.counts.created == 1
    assert world.live() == {"carl@example.com": "Carl"}  # nothing sent for 1 and 2
    failures = _failures(world)
    assert sorted(failures) == ["1", "2"]
    for key, other in (("1", "2"), ("2", "1")):
        message = failures[key]["error_message"]
        assert failures[key]["error_class"] == "IdentityCollisionError"
        assert f"'{other}'" in message
        assert "ann@example.com" in message.lower()


def test_a_new_row_colliding_with_a_synced_one_never_overwrites_its_record(
    world: Contacts,
) -> None:
    world.source([(1, "ann@example.com", "Ann")])
    with world.runner() as runner:
        runner.run("people")
    world.insert([(2, "Ann@Example.com", "Impostor")])
    with world.runner() as runner:
        report = runner.run("people")
    assert report.counts.failed == 1
    assert world.live() == {"ann@example.com": "Ann"}  # the record of row 1 is untouched
    failure = _failures(world)["2"]
    assert failure["error_class"] == "IdentityCollisionError"
    assert "'1'" in failure["error_message"]


def test_two_rows_holding_one_record_id_are_both_refused(world: Contacts) -> None:
    world.source([(1, "ann@example.com", "Ann")])
    with world.runner() as runner:
        runner.run("people")
    ann = world.kizen()["ann@example.com"][0]["id"]
    world.db.run("ALTER TABLE {s}people ADD COLUMN kizen_id TEXT")
    world.db.run("UPDATE {s}people SET kizen_id = :id", {"id": ann})
    world.insert([(2, "other@example.com", "Other")])
    world.db.run("UPDATE {s}people SET kizen_id = :id WHERE id = 2", {"id": ann})
    sync = {"identity": {"record_id_column": "kizen_id"}, "mode": "update"}
    with world.runner(**sync) as runner:
        report = runner.run("people")
    assert report.counts.failed == 2
    assert world.live() == {"ann@example.com": "Ann"}  # row 2 did not take Ann's record
    failures = _failures(world)
    assert sorted(failures) == ["1", "2"]
    assert ann in failures["2"]["error_message"]


def test_a_re_key_onto_two_rows_is_a_collision_and_archives_nothing(world: Contacts) -> None:
    delete = {"archive": True, "max_archive_fraction": 1.0}
    world.source([(1, "ann@example.com", "Ann"), (5, "eve@example.com", "Eve")])
    with world.runner(delete=delete) as runner:
        runner.run("people")
    world.source(
        [
            (101, "ann@example.com", "Ann"),
            (102, "ANN@EXAMPLE.COM", "Ann2"),
            (5, "eve@example.com", "Eve"),
        ]
    )
    with world.runner(delete=delete, failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert report.counts.archived == 0
    assert world.live() == {"ann@example.com": "Ann", "eve@example.com": "Eve"}
    assert sorted(_failures(world)) == ["1", "101", "102"]


def test_a_real_mass_deletion_is_still_stopped_by_the_guard(world: Contacts) -> None:
    world.source([(i, f"p{i}@example.com", f"P{i}") for i in range(1, 11)])
    with world.runner() as runner:
        runner.run("people")
    world.source([(i, f"p{i}@example.com", f"P{i}") for i in range(1, 6)])
    world.insert([(i, f"new{i}@example.com", "N") for i in range(11, 16)])
    writes = world.writes()
    with world.runner() as runner, pytest.raises(GuardError, match="would archive 5 of 10"):
        runner.run("people")
    assert world.writes() == writes


def _plan_rows(report: Any) -> dict[str, str]:
    return {op.source_key: op.op.value for op in report.plan_sample}


def test_plan_shows_a_re_key_as_the_run_sends_it_not_as_an_archive(world: Contacts) -> None:
    delete = {"archive": True, "max_archive_fraction": 0.05}
    world.source([(1, "ann@example.com", "Ann"), (2, "bob@example.com", "Bob")])
    with world.runner(delete=delete) as runner:
        runner.run("people")
    world.source([(101, "ann@example.com", "Ann"), (102, "bob@example.com", "Robert")])
    with world.runner(delete=delete) as runner:
        plan = runner.plan("people")
    # The plan once listed the old keys as archives of the very records the run keeps.
    assert (plan.counts.archived, plan.counts.created, plan.counts.updated) == (0, 0, 1)
    assert _plan_rows(plan) == {"102": "update"}
    assert plan.planned == 1
    with world.runner(delete=delete) as runner:
        report = runner.run("people")
    assert (report.counts.archived, report.counts.created, report.counts.updated) == (0, 0, 1)
    assert not any(r["archived"] for rs in world.kizen().values() for r in rs)


def test_plan_shows_colliding_rows_as_failures_naming_each_other(world: Contacts) -> None:
    world.source([(1, "ann@example.com", "Ann"), (2, "ANN@example.com", "Annie")])
    with world.runner() as runner:
        plan = runner.plan("people")
    # The plan once showed two creates, where the run sends nothing for either row.
    assert (plan.counts.created, plan.counts.failed) == (0, 2)
    assert _plan_rows(plan) == {"1": "fail", "2": "fail"}
    errors = {op.source_key: str(op.error) for op in plan.plan_sample}
    assert "'2'" in errors["1"]
    assert "'1'" in errors["2"]
    assert world.writes() == 0


def test_many_colliding_rows_fail_one_by_one_and_the_rest_is_synced(world: Contacts) -> None:
    world.source([(1, "ann@example.com", "Ann")])
    with world.runner() as runner:
        runner.run("people")
    # Five rows refused for their identity among few changes: once counted as rows that
    # "cannot be mapped", they stopped every run with a reject-rate GuardError.
    world.insert(
        [
            (2, "ANN@example.com", "Impostor"),
            (3, "bob@example.com", "Bob"),
            (4, "BOB@example.com", "Bobby"),
            (5, "cat@example.com", "Cat"),
            (6, "Cat@example.com", "Kitty"),
            (7, "dan@example.com", "Dan"),
        ]
    )
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert (report.counts.created, report.counts.failed) == (1, 5)
    assert report.planned == 6
    assert world.live() == {"ann@example.com": "Ann", "dan@example.com": "Dan"}
    failures = _failures(world)
    assert sorted(failures) == ["2", "3", "4", "5", "6"]
    assert {f["error_class"] for f in failures.values()} == {"IdentityCollisionError"}
