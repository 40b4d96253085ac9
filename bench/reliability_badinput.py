"""Bad input: one catalogue of the ways a source, a sync file or Kizen can be wrong.

Each :class:`BadInput` names a class of bad input, what the user should see, and a check
that builds the situation against the in-process emulator and a SQLite warehouse, runs the
sync, and asserts both what the user sees (the message names the offending key, row or
field) and that nothing already synced is lost. ``tests/reliability/test_bad_input.py``
parametrises over :data:`CATALOGUE`; ``python -m bench.reliability`` runs it for the count
and prints the table in RELIABILITY.md.

Three kinds of expected result:

- ``error before any write``: the run stops with one error and the emulator saw no write;
- ``record fails``: that row fails with a readable message in the run report, the audit
  table and ``open_failures``; the other rows of the same run are written; the record keeps
  what it had in Kizen;
- ``synced``: the input is valid though unusual and must arrive exactly.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kizen_sync.client import ClientSettings
from kizen_sync.config import ProjectConfig, load_config, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import (
    AuthenticationError,
    ConfigError,
    GuardError,
    KizenSyncError,
    PermissionDeniedError,
    SourceError,
)
from kizen_sync.models import RunReport
from kizen_sync.warehouse import Warehouse

ACCOUNTS = "accounts"
CONTACTS = "client_client"
WRITES = ("POST", "PATCH", "PUT", "DELETE")
ERROR = "error before any write"
FAILS = "record fails"
SYNCED = "synced"


class Lab:
    """One bad-input check's world: in-process emulator, SQLite warehouse, runners."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.emu = Emulator.demo()
        self.url = f"sqlite:///{workdir / 'warehouse.db'}"
        self.warehouse = Warehouse(self.url)

    def close(self) -> None:
        """Release the warehouse and the emulator."""
        self.warehouse.dispose()
        self.emu.close()

    def sql(self, statement: str, params: Any = None) -> None:
        """Run one statement in its own transaction."""
        with self.warehouse.engine.begin() as conn:
            conn.execute(text(statement), params or {})

    def settings(self, api_key: str | None = None) -> ClientSettings:
        """Client settings for the in-process emulator (fast retries)."""
        key, user, business = self.emu.credentials
        return ClientSettings(
            base_url="http://emulator",
            api_key=api_key or key,
            user_id=user,
            business_id=business,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
        )

    def project(self, sync: dict[str, Any]) -> ProjectConfig:
        """A project with ``sync`` (named ``s``) on this warehouse."""
        return parse_config(
            {
                "warehouse": {"url": self.url},
                "kizen": {"api_key_env": "KIZEN_SYNC_BAD_INPUT_UNSET"},
                "syncs": [{"name": "s", **sync}],
            }
        )

    def runner(self, sync: dict[str, Any], api_key: str | None = None) -> SyncRunner:
        """A runner on the in-process emulator (no network)."""
        return SyncRunner(
            self.project(sync),
            client_settings=self.settings(api_key),
            transport=httpx.ASGITransport(app=self.emu.app),
            warehouse=self.warehouse,
        )

    def writes(self, *, applied_only: bool = False) -> int:
        """Write requests the emulator answered so far (only 2xx ones: ``applied_only``)."""
        return sum(
            n
            for (method, _route, status), n in self.emu.request_log.counts().items()
            if method in WRITES and (not applied_only or 200 <= status < 300)
        )

    def records(self, obj: str, identifier: str) -> list[dict[str, Any]]:
        """Records (archived too) whose identifier is ``identifier``, as ``{field: value}``."""
        ident = "email" if obj == CONTACTS else "name"
        out = []
        for record in self.emu.records(obj, include_archived=True):
            values = {f["name"]: f.get("value") for f in record["fields"].values()}
            if str(values.get(ident) or "").casefold() == identifier.casefold():
                out.append({**values, "_id": record["id"], "_archived": record["archived"]})
        return out

    def one(self, obj: str, identifier: str) -> dict[str, Any]:
        """The single live record with ``identifier`` (asserts there is exactly one record)."""
        found = self.records(obj, identifier)
        assert len(found) == 1, f"{identifier}: {len(found)} records"
        assert not found[0]["_archived"], f"{identifier} is archived"
        return found[0]

    def archive(self, obj: str, record_id: str) -> None:
        """Archive a record the way a Kizen user would (DELETE through the API)."""
        key, user, business = self.emu.credentials
        headers = {"X-API-KEY": key, "X-USER-ID": user, "X-BUSINESS-ID": business}

        async def delete() -> int:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.emu.app), base_url="http://emulator"
            ) as client:
                r = await client.delete(f"/api/records/{obj}/{record_id}", headers=headers)
                return r.status_code

        assert asyncio.run(delete()) == 204


@contextmanager
def lab() -> Iterator[Lab]:
    """A fresh :class:`Lab` in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="kizen-bad-input-") as tmp:
        world = Lab(Path(tmp))
        try:
            yield world
        finally:
            world.close()


@dataclass(frozen=True)
class BadInput:
    """One class of bad input: what is given, what the user sees, and the check."""

    name: str
    given: str
    expected: str
    kind: str
    check: Callable[[Lab], None]


# --- record-level cases: a good baseline, then one bad value -----------------------------------

_IDENT = {ACCOUNTS: ("name", "Acct {i}"), CONTACTS: ("email", "p{i}@example.com")}
_NOTE = {ACCOUNTS: "description", CONTACTS: "last_name"}


def _value_sync(obj: str, field: str, **spec: Any) -> dict[str, Any]:
    ident, _ = _IDENT[obj]
    return {
        "object": obj,
        "source": {"table": "src", "primary_key": ["id"]},
        "identity": {"match_on": ident},
        "mode": "upsert",
        "fields": [
            {"column": "ident", "field": ident},
            {"column": "note", "field": _NOTE[obj]},
            {"column": "v", "field": field, **spec},
        ],
    }


def _baseline(world: Lab, obj: str, coltype: str, good: Any, sync: dict[str, Any]) -> SyncRunner:
    """Rows 1-4 with a good value, synced; returns the runner."""
    _, pattern = _IDENT[obj]
    world.sql(f"CREATE TABLE src (id INTEGER PRIMARY KEY, ident TEXT, note TEXT, v {coltype})")
    for i in range(1, 5):
        world.sql(
            "INSERT INTO src VALUES (:i, :ident, :note, :v)",
            {"i": i, "ident": pattern.format(i=i), "note": f"note {i}", "v": good},
        )
    runner = world.runner(sync)
    report = runner.run("s")
    assert (report.counts.created, report.counts.failed) == (4, 0), report.failures
    return runner


def _failure(report: RunReport, key: str) -> dict[str, Any]:
    rows = [f for f in report.failures if f["source_key"] == key]
    assert rows, f"row {key} did not fail: {report.failures}"
    return rows[0]


def value_case(
    name: str,
    given: str,
    field: str,
    coltype: str,
    good: Any,
    bad: Any,
    fragment: str,
    *,
    obj: str = ACCOUNTS,
    **spec: Any,
) -> BadInput:
    """Row 2 gets ``bad`` in the column mapped to ``field`` while row 3 changes a good field.

    The run must fail row 2 only, with a message naming the column, the field and
    ``fragment``; row 3's change must arrive; row 2's record keeps its previous value.
    """

    def check(world: Lab) -> None:
        sync = _value_sync(obj, field, **spec)
        runner = _baseline(world, obj, coltype, good, sync)
        _, pattern = _IDENT[obj]
        before = world.one(obj, pattern.format(i=2))[field]
        world.sql("UPDATE src SET v = :bad WHERE id = 2", {"bad": bad})
        world.sql("UPDATE src SET note = 'changed' WHERE id = 3")
        report = runner.run("s")
        assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
        failure = _failure(report, "2")
        message = str(failure["message"])
        assert f"'v' -> field '{field}'" in message, message
        assert fragment in message, message
        assert world.one(obj, pattern.format(i=2))[field] == before  # nothing lost
        assert world.one(obj, pattern.format(i=3))[_NOTE[obj]] == "changed"
        failures = runner.open_failures("s")
        assert [f["source_key"] for f in failures] == ["2"]
        assert fragment in failures[0]["error_message"]
        assert field in (failures[0]["field_errors"] or "")

    return BadInput(name, given, f"row fails: {fragment}", FAILS, check)


def synced_case(
    name: str,
    given: str,
    field: str,
    coltype: str,
    value: Any,
    expected: Any,
    *,
    obj: str = ACCOUNTS,
    **spec: Any,
) -> BadInput:
    """An unusual but valid value must arrive as ``expected`` (read back from Kizen)."""

    def check(world: Lab) -> None:
        sync = _value_sync(obj, field, **spec)
        runner = _baseline(world, obj, coltype, None, sync)
        world.sql("UPDATE src SET v = :v WHERE id = 2", {"v": value})
        report = runner.run("s")
        assert (report.counts.updated, report.counts.failed) == (1, 0), report.failures
        _, pattern = _IDENT[obj]
        assert world.one(obj, pattern.format(i=2))[field] == expected
        assert runner.plan("s").planned == 0  # and it stays in step: nothing to re-send

    return BadInput(name, given, f"synced as {expected!r}", SYNCED, check)


# --- cases stopping before any write ------------------------------------------------------------


def _accounts_by_id_sync() -> dict[str, Any]:
    """Table ``acc`` (id, kid, name) to accounts, identified by the Kizen id in ``kid``."""
    return {
        "object": ACCOUNTS,
        "source": {"table": "acc", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "name", "field": "name"}],
    }


def _people_sync(table: str = "people", **overrides: Any) -> dict[str, Any]:
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


def _people(world: Lab, n: int = 10, *, pk: str = "INTEGER PRIMARY KEY") -> SyncRunner:
    """``n`` people synced; returns the runner of that sync."""
    world.sql(f"CREATE TABLE people (id {pk}, email TEXT, first TEXT)")
    for i in range(1, n + 1):
        world.sql(
            "INSERT INTO people VALUES (:i, :e, :f)",
            {"i": i, "e": f"p{i}@example.com", "f": f"First{i}"},
        )
    runner = world.runner(_people_sync())
    report = runner.run("s")
    assert (report.counts.created, report.counts.failed) == (n, 0), report.failures
    return runner


def _stops(
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
        runner = _people(world)
        _stops(world, make(world, runner), error, *fragments)

    return BadInput(name, given, expected, ERROR, check)


def _null_pk(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'p1@example.com', 'First1'), (NULL, 'x@e.com', 'X')")
    writes = world.writes()
    with pytest.raises(SourceError) as caught:
        world.runner(_people_sync()).run("s")
    assert "source.primary_key" in str(caught.value)
    assert "NULL" in str(caught.value)
    assert world.writes() == writes


def _dup_pk(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER, email TEXT, first TEXT)")
    world.sql(
        "INSERT INTO people VALUES (1, 'p1@example.com', 'A'), (7, 'a@e.com', 'B'), "
        "(7, 'b@e.com', 'C')"
    )
    with pytest.raises(SourceError) as caught:
        world.runner(_people_sync()).run("s")
    assert "not unique" in str(caught.value)
    assert "'7' x2" in str(caught.value)
    assert world.writes() == 0


def _record_id_not_uuid(world: Lab) -> None:
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
    message = str(_failure(report, "2")["message"])
    assert "'not-a-uuid' is not a Kizen record id (a UUID)" in message
    assert "kid" in message
    assert world.one("companies_company", "fine")["_id"] == acme


def _kizen_400_fields(world: Lab) -> None:
    sync = _value_sync(ACCOUNTS, "primary_company")
    runner = _baseline(world, ACCOUNTS, "TEXT", None, sync)
    ghost = "7f1e2d3c-0000-4000-8000-0000000000ff"  # a UUID no company has
    world.sql("UPDATE src SET v = :g WHERE id = 2", {"g": ghost})
    world.sql("UPDATE src SET note = 'changed' WHERE id = 3")
    report = runner.run("s")
    assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
    failure = _failure(report, "2")
    assert failure["error_class"] == "KizenValidationError"
    assert str(failure["message"]).startswith("400 ")
    assert "primary_company" in failure["field_errors"], failure
    assert world.one(ACCOUNTS, "Acct 2").get("primary_company") is None
    assert world.one(ACCOUNTS, "Acct 3")["description"] == "changed"


def _kizen_400_unique(world: Lab) -> None:
    world.sql("CREATE TABLE acc (id INTEGER PRIMARY KEY, kid TEXT, name TEXT)")
    ids = {}
    for i in (1, 2):
        ids[i] = world.emu.create_record(ACCOUNTS, {"name": f"Live {i}"})
        world.sql("INSERT INTO acc VALUES (:i, :k, :n)", {"i": i, "k": ids[i], "n": f"Live {i}"})
    runner = world.runner(_accounts_by_id_sync())
    assert runner.run("s").counts.failed == 0
    world.sql("UPDATE acc SET name = 'Live 1' WHERE id = 2")  # takes a live record's name
    report = runner.run("s")
    failure = _failure(report, "2")
    assert str(failure["message"]).startswith("400 ")
    assert "name" in failure["field_errors"], failure
    assert world.one(ACCOUNTS, "Live 2")["_id"] == ids[2]  # unchanged, nothing merged
    assert world.one(ACCOUNTS, "Live 1")["_id"] == ids[1]


def _kizen_404(world: Lab) -> None:
    runner = _people(world, 3)
    victim = world.one(CONTACTS, "p2@example.com")["_id"]
    world.archive(CONTACTS, victim)  # someone deletes it in Kizen
    world.sql("UPDATE people SET first = 'New' WHERE id IN (2, 3)")
    report = runner.run("s")
    assert (report.counts.updated, report.counts.failed) == (1, 1), report.failures
    failure = _failure(report, "2")
    assert failure["error_class"] == "NotFoundError"
    assert victim in str(failure["message"])
    assert "deleted or archived in Kizen" in str(failure["message"])
    assert world.one(CONTACTS, "p3@example.com")["first_name"] == "New"
    assert len(world.records(CONTACTS, "p2@example.com")) == 1  # not re-created behind it


def _kizen_409(world: Lab) -> None:
    world.sql("CREATE TABLE acc (id INTEGER PRIMARY KEY, kid TEXT, name TEXT)")
    gone = world.emu.create_record(ACCOUNTS, {"name": "Old Name"})
    world.archive(ACCOUNTS, gone)
    mine = world.emu.create_record(ACCOUNTS, {"name": "Mine"})
    world.sql("INSERT INTO acc VALUES (1, :k, 'Mine')", {"k": mine})
    runner = world.runner(_accounts_by_id_sync())
    assert runner.run("s").counts.failed == 0
    world.sql("UPDATE acc SET name = 'Old Name' WHERE id = 1")  # an archived record's name
    report = runner.run("s")
    failure = _failure(report, "1")
    assert failure["error_class"] == "ConflictError"
    assert str(failure["message"]).startswith("409 ")
    assert world.one(ACCOUNTS, "Mine")["_id"] == mine
    assert world.records(ACCOUNTS, "Old Name")[0]["_archived"]


def _archived_identifier(world: Lab) -> None:
    held = world.emu.create_record(CONTACTS, {"email": "back@example.com", "first_name": "Old"})
    world.archive(CONTACTS, held)
    world.sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'back@example.com', 'Restored')")
    runner = world.runner(_people_sync())
    report = runner.run("s")
    assert report.counts.failed == 0, report.failures
    records = world.records(CONTACTS, "back@example.com")
    assert len(records) == 1, "a second record was created next to the archived one"
    assert (records[0]["_id"], records[0]["_archived"]) == (held, False)
    assert records[0]["first_name"] == "Restored"


def _null_identifier(world: Lab) -> None:
    world.sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT)")
    world.sql("INSERT INTO people VALUES (1, 'p1@example.com', 'A'), (2, NULL, 'B')")
    report = world.runner(_people_sync()).run("s")
    assert (report.counts.created, report.counts.failed) == (1, 1), report.failures
    message = str(_failure(report, "2")["message"])
    assert "email" in message or "identifier" in message, message
    assert world.one(CONTACTS, "p1@example.com")["first_name"] == "A"


def _empty_source(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("DELETE FROM people")
    return lambda: runner.run("s")


def _half_loaded(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("DELETE FROM people WHERE id > 5")
    return lambda: runner.run("s")


def _query_fails(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["source"] = {"query": "SELECT id, email, first FROM no_such_table", "primary_key": ["id"]}
    return lambda: world.runner(sync).run("s")


def _missing_table(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    return lambda: world.runner(_people_sync(table="peoples")).run("s")


def _unknown_column(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["fields"] = [*sync["fields"], {"column": "nickname", "field": "last_name"}]
    return lambda: world.runner(sync).run("s")


def _unknown_field(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": "frist_name"}]
    return lambda: world.runner(sync).run("s")


_GHOST_FIELD = "00000000-0000-4000-8000-00000000abcd"


def _unknown_field_id(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": _GHOST_FIELD}]
    return lambda: world.runner(sync).run("s")


def _read_only_field(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["fields"] = [sync["fields"][0], {"column": "first", "field": "created"}]
    return lambda: world.runner(sync).run("s")


def _broken_mapping(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    sync = _people_sync()
    sync["fields"] = [*sync["fields"], {"column": "first", "field": "birthday"}]
    world.sql("UPDATE people SET first = 'soon'")  # all rows now fail the date mapping
    return lambda: world.runner(sync).run("s")


def _bad_key(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("UPDATE people SET first = 'Changed'")

    def run() -> None:
        with pytest.raises(AuthenticationError) as caught:
            world.runner(_people_sync(), api_key="wrong-key-123").run("s")
        exc = caught.value
        assert "wrong-key-123" not in f"{exc} {exc.context} {exc.body}"
        raise exc

    return run


def _readonly_key(world: Lab, runner: SyncRunner) -> Callable[[], Any]:
    world.sql("UPDATE people SET first = 'Changed'")

    def run() -> None:
        readonly = world.runner(_people_sync(), api_key=world.emu.readonly_key)
        try:
            readonly.run("s")
        finally:
            # Nothing was confirmed: the next run with a good key still sends every row.
            assert readonly.plan("s").counts.updated == 10

    return run


def _file_case(name: str, given: str, content: str, *fragments: str) -> BadInput:
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


_GOOD_FILE = """\
warehouse: {url: "sqlite:///w.db"}
syncs:
  - name: s
    object: client_client
    source: {table: people, primary_key: [id]}
    identity: {match_on: email}
    fields:
      - {column: email, field: email}
"""


def _missing_api_key(world: Lab) -> None:
    _people(world, 1)
    runner = SyncRunner(world.project(_people_sync()), warehouse=world.warehouse)
    with pytest.raises(ConfigError) as caught:
        runner.run("s")
    assert "KIZEN_SYNC_BAD_INPUT_UNSET" in str(caught.value)
    assert world.writes() == 1  # only the baseline's create


LONG = "x" * 300
PARIS = timezone(timedelta(hours=2))

CATALOGUE: list[BadInput] = [
    BadInput(
        "null_primary_key",
        "a NULL in the primary-key column",
        "SourceError naming source.primary_key and the NULL",
        ERROR,
        _null_pk,
    ),
    BadInput(
        "duplicate_primary_key",
        "two rows with id 7",
        "SourceError: primary key is not unique, e.g. '7' x2",
        ERROR,
        _dup_pk,
    ),
    BadInput(
        "record_id_not_uuid",
        "record_id_column holds 'not-a-uuid'",
        "row fails: 'not-a-uuid' is not a Kizen record id (a UUID)",
        FAILS,
        _record_id_not_uuid,
    ),
    error_case(
        "unknown_field_name",
        "fields[].field: frist_name",
        "ConfigError: syncs[0].fields[1].field: object has no field 'frist_name'",
        _unknown_field,
        ConfigError,
        "syncs[0].fields[1].field",
        "frist_name",
    ),
    error_case(
        "unknown_field_id",
        "fields[].field: a UUID no field has",
        "ConfigError naming the field id",
        _unknown_field_id,
        ConfigError,
        "syncs[0].fields[1].field",
        _GHOST_FIELD,
    ),
    error_case(
        "read_only_field",
        "fields[].field: created",
        "ConfigError: field 'created' is read-only in Kizen",
        _read_only_field,
        ConfigError,
        "syncs[0].fields[1].field",
        "read-only",
    ),
    error_case(
        "unknown_column",
        "fields[].column: nickname (not in the table)",
        "SourceError: fields[2].column: unknown column 'nickname' (columns listed)",
        _unknown_column,
        SourceError,
        "fields[2].column",
        "'nickname'",
    ),
    error_case(
        "missing_table",
        "source.table: peoples",
        "SourceError: table 'peoples' not found (tables listed)",
        _missing_table,
        SourceError,
        "source.table",
        "'peoples' not found",
    ),
    error_case(
        "source_query_fails",
        "source.query on a table that does not exist",
        "SourceError: source.query: the query failed (driver message)",
        _query_fails,
        SourceError,
        "source.query",
        "the query failed",
    ),
    error_case(
        "empty_source",
        "the source table is empty (failed load)",
        "GuardError: would archive 10 of 10 synced records; nothing was sent",
        _empty_source,
        GuardError,
        "would archive 10 of 10",
        "nothing was sent",
    ),
    error_case(
        "half_loaded_source",
        "half the rows are missing",
        "GuardError: would archive 5 of 10 synced records (50%)",
        _half_loaded,
        GuardError,
        "would archive 5 of 10",
        "delete.max_archive_fraction",
    ),
    error_case(
        "mapping_broken_for_most_rows",
        "every row fails the date mapping",
        "GuardError: 10 of 10 planned records cannot be mapped; examples with row keys",
        _broken_mapping,
        GuardError,
        "10 of 10 planned records",
        "row 1:",
    ),
    error_case(
        "kizen_401",
        "a wrong API key",
        "AuthenticationError (401), the key is not echoed; nothing written",
        _bad_key,
        AuthenticationError,
        "401",
    ),
    error_case(
        "kizen_403",
        "a read-only API key",
        "PermissionDeniedError (403) on the first write; nothing confirmed, all re-sent later",
        _readonly_key,
        PermissionDeniedError,
        "403",
    ),
    BadInput(
        "kizen_400_field_errors",
        "a relationship to a company id Kizen does not know",
        "row fails: 400 with Kizen's message under field primary_company",
        FAILS,
        _kizen_400_fields,
    ),
    BadInput(
        "kizen_400_unique",
        "a rename onto another live record's name",
        "row fails: 400 unique under field name; no record merged",
        FAILS,
        _kizen_400_unique,
    ),
    BadInput(
        "kizen_404_deleted_in_kizen",
        "the record was archived in Kizen, then its row changed",
        "row fails: record <id> was deleted or archived in Kizen; not re-created",
        FAILS,
        _kizen_404,
    ),
    BadInput(
        "kizen_409_archived_name",
        "a rename onto an archived record's name",
        "row fails: 409 conflict; both records unchanged",
        FAILS,
        _kizen_409,
    ),
    BadInput(
        "identifier_held_by_archived_record",
        "a new row whose e-mail an archived contact holds",
        "synced: the archived record is restored and updated, no duplicate",
        SYNCED,
        _archived_identifier,
    ),
    BadInput(
        "null_identifier",
        "upsert row with a NULL e-mail",
        "row fails: no identifier to create the record with",
        FAILS,
        _null_identifier,
    ),
    value_case(
        "wrong_type_integer",
        "employees = 'lots'",
        "employees",
        "TEXT",
        10,
        "lots",
        "'lots' is not a number",
    ),
    value_case(
        "integer_out_of_range",
        "employees = 3000000000",
        "employees",
        "INTEGER",
        10,
        3_000_000_000,
        "does not fit a 4-byte integer",
    ),
    value_case(
        "text_over_255",
        "first_name of 300 characters",
        "first_name",
        "TEXT",
        "Ann",
        LONG,
        "text is 300 characters; Kizen allows 255",
        obj=CONTACTS,
    ),
    value_case(
        "invalid_email",
        "billing_email = 'not-an-email'",
        "billing_email",
        "TEXT",
        "ok@example.com",
        "not-an-email",
        "is not a valid email address",
    ),
    value_case(
        "invalid_phone",
        "phone = '12'",
        "phone",
        "TEXT",
        "+13125550100",
        "12",
        "is not a valid phone number",
    ),
    value_case(
        "unknown_option_label",
        "tier = 'Platinum'",
        "tier",
        "TEXT",
        "Gold",
        "Platinum",
        "value 'Platinum' is not an option of tier (options: Gold, Silver, Bronze)",
    ),
    value_case(
        "unknown_tag",
        "labels = 'Strategic,Nope'",
        "labels",
        "TEXT",
        "Strategic",
        "Strategic,Nope",
        "tag 'Nope' is not a tag of labels",
        format="delimited",
    ),
    value_case(
        "nan",
        "health_score = NaN (a numeric NaN; a float NaN is pandas' NULL)",
        "health_score",
        "TEXT",
        "1.5",
        "NaN",
        "NaN is not a number Kizen can store",
    ),
    value_case(
        "infinity",
        "health_score = +inf",
        "health_score",
        "REAL",
        1.5,
        float("inf"),
        "inf is not a number Kizen can store",
    ),
    value_case(
        "invalid_date",
        "renewal_date = '2024-13-45'",
        "renewal_date",
        "TEXT",
        "2024-01-31",
        "2024-13-45",
        "is not an ISO date",
    ),
    value_case(
        "rating_out_of_scale",
        "satisfaction = 9 (scale 1..5)",
        "satisfaction",
        "INTEGER",
        3,
        9,
        "outside the scale of satisfaction (1..5)",
    ),
    value_case(
        "unknown_time_zone",
        "account_timezone = 'Mars/Olympus'",
        "account_timezone",
        "TEXT",
        "UTC",
        "Mars/Olympus",
        "'Mars/Olympus' is not a time zone",
    ),
    value_case(
        "bad_checkbox",
        "active = 'maybe'",
        "active",
        "TEXT",
        "yes",
        "maybe",
        "is not a checkbox value",
    ),
    value_case(
        "malformed_json_list",
        "products = '[Core' (format: json)",
        "products",
        "TEXT",
        '["Core"]',
        "[Core",
        "is not a JSON array",
        format="json",
    ),
    synced_case(
        "naive_datetime",
        "last_contacted = 2024-05-01 10:00 (naive, column zone Europe/Paris)",
        "last_contacted",
        "TEXT",
        "2024-05-01 10:00:00",
        "2024-05-01T08:00:00.000000+00:00",
        timezone="Europe/Paris",
    ),
    synced_case(
        "aware_datetime",
        "last_contacted = 2024-05-01T10:00+02:00",
        "last_contacted",
        "TEXT",
        datetime(2024, 5, 1, 10, tzinfo=PARIS).isoformat(),
        "2024-05-01T08:00:00.000000+00:00",
    ),
    synced_case(
        "unicode_and_emoji",
        "first_name with emoji, CJK, RTL and combining marks",
        "first_name",
        "TEXT",
        "Zoë 🚀 東京 שלום e\u0301",
        "Zoë 🚀 東京 שלום e\u0301",
        obj=CONTACTS,
    ),
    _file_case(
        "malformed_yaml",
        "a sync file with a broken indent",
        "warehouse:\n  url: x\n syncs: [\n",
        "not valid YAML",
        "line ",
    ),
    _file_case(
        "duplicate_yaml_key",
        "a sync file with 'fields' twice",
        _GOOD_FILE + "    fields: []\n",
        "key 'fields' appears twice",
    ),
    _file_case(
        "invalid_sync_file",
        "unknown key, bad mode, SQL in a table name: all reported at once",
        _GOOD_FILE.replace("object: client_client", "object: client_client\n    colour: red")
        .replace("table: people", 'table: "people; DROP TABLE x"')
        .replace("identity:", "mode: sometimes\n    identity:"),
        "syncs[0].colour",
        "syncs[0].mode",
        "not a plain SQL identifier",
    ),
    BadInput(
        "missing_api_key",
        "the API-key variable is not set",
        "ConfigError naming the variable to set",
        ERROR,
        _missing_api_key,
    ),
]


def run_case(case: BadInput) -> None:
    """Run one case in a fresh lab (raises AssertionError when the behaviour is wrong)."""
    with lab() as world:
        case.check(world)
