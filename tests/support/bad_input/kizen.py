"""Cases where Kizen itself objects (400, 404, 409) or holds something the source runs into.

Each one syncs a baseline, makes Kizen or the source disagree, and asserts that the offending
row fails with Kizen's reason (or, for an identifier held by an archived record, that the
record is restored rather than duplicated) while everything else arrives.
"""

from __future__ import annotations

from typing import Any

from tests.support.bad_input.lab import ACCOUNTS, CONTACTS, Lab
from tests.support.bad_input.stops import people_sync, synced_people
from tests.support.bad_input.values import baseline, failure_of, value_sync


def accounts_by_id_sync() -> dict[str, Any]:
    """Table ``acc`` (id, kid, name) to accounts, identified by the Kizen id in ``kid``."""
    return {
        "object": ACCOUNTS,
        "source": {"table": "acc", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "name", "field": "name"}],
    }


def record_id_not_uuid(world: Lab) -> None:
    world.sql("CREATE TABLE acc (id INTEGER PRIMARY KEY, kid TEXT, note TEXT)")
    acme = "7f1e2d3c-0000-4000-8000-000000000001"
    world.sql("INSERT INTO acc VALUES (1, :a, 'fine'), (2, 'not-a-uuid', 'bad')", {"a": acme})
    sync = {
        "object": "companies_company",
        "source": {"table": "acc", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "note", "field": "name"}],
        "max_reject_rate": 1.0,
    }
    runner = world.runner(sync)
    report = runner.run("s")
    assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
    message = str(failure_of(report, "2")["message"])
    assert "'not-a-uuid' is not a Kizen record id (a UUID)" in message
    assert "kid" in message
    assert world.one("companies_company", "fine")["_id"] == acme


def kizen_400_fields(world: Lab) -> None:
    sync = value_sync(ACCOUNTS, "primary_company")
    runner = baseline(world, ACCOUNTS, "TEXT", None, sync)
    ghost = "7f1e2d3c-0000-4000-8000-0000000000ff"  # a UUID no company has
    world.sql("UPDATE src SET v = :g WHERE id = 2", {"g": ghost})
    world.sql("UPDATE src SET note = 'changed' WHERE id = 3")
    report = runner.run("s")
    assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
    failure = failure_of(report, "2")
    assert failure["error_class"] == "KizenValidationError"
    assert str(failure["message"]).startswith("400 ")
    assert "primary_company" in failure["field_errors"], failure
    assert world.one(ACCOUNTS, "Acct 2").get("primary_company") is None
    assert world.one(ACCOUNTS, "Acct 3")["description"] == "changed"


def kizen_400_unique(world: Lab) -> None:
    """Contact e-mails are unique (names are not: real businesses hold duplicate names)."""
    world.sql("CREATE TABLE ppl (id INTEGER PRIMARY KEY, kid TEXT, email TEXT)")
    ids = {}
    for i in (1, 2):
        email = f"live{i}@example.com"
        ids[i] = world.emu.create_record(CONTACTS, {"email": email})
        world.sql("INSERT INTO ppl VALUES (:i, :k, :e)", {"i": i, "k": ids[i], "e": email})
    runner = world.runner(
        {
            "object": CONTACTS,
            "source": {"table": "ppl", "primary_key": ["id"]},
            "identity": {"record_id_column": "kid"},
            "fields": [{"column": "email", "field": "email"}],
        }
    )
    assert runner.run("s").counts.failed == 0
    world.sql("UPDATE ppl SET email = 'LIVE1@example.com' WHERE id = 2")  # another's e-mail
    report = runner.run("s")
    failure = failure_of(report, "2")
    assert str(failure["message"]).startswith("400 ")
    assert "email" in failure["field_errors"], failure
    assert world.one(CONTACTS, "live2@example.com")["_id"] == ids[2]  # unchanged, not merged
    assert world.one(CONTACTS, "live1@example.com")["_id"] == ids[1]


def kizen_404(world: Lab) -> None:
    runner = synced_people(world, 3)
    victim = world.one(CONTACTS, "p2@example.com")["_id"]
    world.archive(CONTACTS, victim)  # someone deletes it in Kizen
    world.sql("UPDATE people SET first = 'New' WHERE id IN (2, 3)")
    report = runner.run("s")
    assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
    failure = failure_of(report, "2")
    assert failure["error_class"] == "NotFoundError"
    assert victim in str(failure["message"])
    assert "deleted or archived in Kizen" in str(failure["message"])
    assert world.one(CONTACTS, "p3@example.com")["first_name"] == "New"
    assert len(world.records(CONTACTS, "p2@example.com")) == 1  # not re-created behind it


def kizen_400_archived_name(world: Lab) -> None:
    world.sql("CREATE TABLE acc (id INTEGER PRIMARY KEY, kid TEXT, name TEXT)")
    gone = world.emu.create_record(ACCOUNTS, {"name": "Old Name"})
    world.archive(ACCOUNTS, gone)
    mine = world.emu.create_record(ACCOUNTS, {"name": "Mine"})
    world.sql("INSERT INTO acc VALUES (1, :k, 'Mine')", {"k": mine})
    runner = world.runner(accounts_by_id_sync())
    assert runner.run("s").counts.failed == 0
    world.sql("UPDATE acc SET name = 'Old Name' WHERE id = 1")  # an archived record's name
    report = runner.run("s")
    failure = failure_of(report, "1")
    # Kizen documents 200 and 400 for PATCH (live contract): the conflict is a 400
    assert failure["error_class"] == "KizenValidationError"
    assert str(failure["message"]).startswith("400 ")
    assert "archived" in str(failure["message"])
    assert world.one(ACCOUNTS, "Mine")["_id"] == mine
    assert world.records(ACCOUNTS, "Old Name")[0]["_archived"]


def archived_identifier(world: Lab) -> None:
    held = world.emu.create_record(CONTACTS, {"email": "back@example.com", "first_name": "Old"})
    world.archive(CONTACTS, held)
    world.sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'back@example.com', 'Restored')")
    runner = world.runner(people_sync())
    report = runner.run("s")
    assert report.counts.failed == 0, report.failures
    records = world.records(CONTACTS, "back@example.com")
    assert len(records) == 1, "a second record was created next to the archived one"
    assert (records[0]["_id"], records[0]["_archived"]) == (held, False)
    assert records[0]["first_name"] == "Restored"


def null_identifier(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'p1@example.com', 'A'), (2, NULL, 'B')")
    report = world.runner(people_sync()).run("s")
    assert (report.counts.created, report.counts.failed) == (1, 1), report.failures
    message = str(failure_of(report, "2")["message"])
    assert "email" in message or "identifier" in message, message
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "A"
