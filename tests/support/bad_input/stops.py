"""Cases that must stop before any write: a broken source, sync file, mapping or API key.

Ten people are synced first (:func:`synced_people`); then something is broken and the next run
must raise one error naming the offending key, row or field, with no write sent and the people
already synced intact (:func:`stops_cleanly`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kizen_sync.config import load_config
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import (
    AuthenticationError,
    ConfigError,
    KizenSyncError,
    PermissionDeniedError,
    SourceError,
)
from tests.support.bad_input.lab import CONTACTS, ERROR, BadInput, Lab


def people_sync(table: str = "people", **overrides: Any) -> dict[str, Any]:
    return {
        "object": CONTACTS,
        "source": {"table": table, "primary_key": ["id"]},
        "identity": {"match_on": "email"},
        "mode": "upsert",
        "fields": [
            {"column": "email", "field": "email"},
            {"column": "first", "field": "first_name"},
        ],
    } | overrides


def synced_people(world: Lab, n: int = 10, *, pk: str = "INTEGER PRIMARY KEY") -> SyncRunner:
    """``n`` people synced; returns the runner of that sync."""
    world.sql(f"CREATE TABLE people (id {pk}, email TEXT, first TEXT)")
    for i in range(1, n + 1):
        world.sql(
            "INSERT INTO people VALUES (:i, :e, :f)",
            {"i": i, "e": f"p{i}@example.com", "f": f"First{i}"},
        )
    runner = world.runner(people_sync())
    report = runner.run("s")
    assert (report.counts.created, report.counts.failed) == (n, 0), report.failures
    return runner


def stops_cleanly(
    world: Lab,
    run: Callable[[], Any],
    error: type[KizenSyncError],
    *fragments: str,
    kept: int = 10,
) -> KizenSyncError:
    """``run()`` raises ``error`` naming every fragment; no write was sent (for a 403, whose
    refusal comes *as* the answer to a write: none was applied); ``kept`` people intact.
    """
    applied_only = issubclass(error, PermissionDeniedError)
    writes = world.writes(applied_only=applied_only)
    with pytest.raises(error) as caught:
        run()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert world.writes(applied_only=applied_only) == writes, "a write was sent"
    for i in range(1, kept + 1):
        assert world.one(CONTACTS, f"p{i}@example.com")["first_name"] == f"First{i}"
    return caught.value


def error_case(
    name: str,
    given: str,
    expected: str,
    make: Callable[[Lab, SyncRunner], Callable[[], Any]],
    error: type[KizenSyncError],
    *fragments: str,
) -> BadInput:
    """Ten people synced, then ``make`` breaks something; the next run must stop cleanly."""

    def check(world: Lab) -> None:
        runner = synced_people(world)
        stops_cleanly(world, make(world, runner), error, *fragments)

    return BadInput(name, given, expected, ERROR, check)


def null_pk(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'p1@example.com', 'First1'), (NULL, 'x@e.com', 'X')")
    writes = world.writes()
    with pytest.raises(SourceError) as caught:
        world.runner(people_sync()).run("s")
    assert "source.primary_key" in str(caught.value)
    assert "NULL" in str(caught.value)
    assert world.writes() == writes


def dup_pk(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER, email TEXT, first TEXT)")
    world.sql(
        "INSERT INTO people VALUES (1, 'p1@example.com', 'A'), (7, 'a@e.com', 'B'), "
        "(7, 'b@e.com', 'C')"
    )
    with pytest.raises(SourceError) as caught:
        world.runner(people_sync()).run("s")
    assert "not unique" in str(caught.value)
    assert "'7' x2" in str(caught.value)
    assert world.writes() == 0


def empty_source(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("DELETE FROM people")
    return lambda: runner.run("s")


def half_loaded(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("DELETE FROM people WHERE id > 5")
    return lambda: runner.run("s")


def query_fails(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["source"] = {"query": "SELECT id, email, first FROM no_such_table", "primary_key": ["id"]}
    return lambda: world.runner(sync).run("s")


def missing_table(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    return lambda: world.runner(people_sync(table="peoples")).run("s")


def unknown_column(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["fields"] = [*sync["fields"], {"column": "nickname", "field": "last_name"}]
    return lambda: world.runner(sync).run("s")


def unknown_field(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": "frist_name"}]
    return lambda: world.runner(sync).run("s")


GHOST_FIELD = "00000000-0000-4000-8000-00000000abcd"


def unknown_field_id(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": GHOST_FIELD}]
    return lambda: world.runner(sync).run("s")


def read_only_field(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": "created"}]
    return lambda: world.runner(sync).run("s")


def broken_mapping(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = people_sync()
    sync["fields"] = [*sync["fields"], {"column": "first", "field": "birthday"}]
    world.sql("UPDATE people SET first = 'soon'")  # all rows now fail the date mapping
    return lambda: world.runner(sync).run("s")


def bad_key(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("UPDATE people SET first = 'Changed'")

    def run() -> None:
        with pytest.raises(AuthenticationError) as caught:
            world.runner(people_sync(), api_key="wrong-key-123").run("s")
        exc = caught.value
        assert "wrong-key-123" not in f"{exc} {exc.context} {exc.body}"
        raise exc

    return run


def readonly_key(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("UPDATE people SET first = 'Changed'")

    def run() -> None:
        readonly = world.runner(people_sync(), api_key=world.emu.readonly_key)
        try:
            readonly.run("s")
        finally:
            # Nothing was confirmed: the next run with a good key still sends every row.
            assert readonly.plan("s").counts.updated == 10

    return run


def file_case(name: str, given: str, content: str, *fragments: str) -> BadInput:
    """A sync file that must be refused with every problem named."""

    def check(world: Lab) -> None:
        path = world.workdir / "syncs.yaml"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        for fragment in fragments:
            assert fragment in message, message
        assert world.writes() == 0

    return BadInput(name, given, f"ConfigError naming {', '.join(fragments)}", ERROR, check)


GOOD_FILE = """\
warehouse: {url: "sqlite:///w.db"}
syncs:
  - name: s
    object: client_client
    source: {table: people, primary_key: [id]}
    identity: {match_on: email}
    fields:
      - {column: email, field: email}
"""


def missing_api_key(world: Lab) -> None:
    synced_people(world, 1)
    runner = SyncRunner(world.project(people_sync()), warehouse=world.warehouse)
    with pytest.raises(ConfigError) as caught:
        runner.run("s")
    assert "KIZEN_SYNC_BAD_INPUT_UNSET" in str(caught.value)
    assert world.writes() == 1  # only the baseline's create
