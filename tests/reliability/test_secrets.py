"""Secrets and data: a canary API key never leaks; TLS off is explicit; names are checked
before any SQL; sensitive fields reach the audit table only as keyed hashes.

The canary is a unique string used as the real API key of the emulator (and, for the failure
paths, as a key the emulator refuses). Every place a user or operator can read is searched
for it: log records of every logger at DEBUG (httpx and httpcore included), exceptions and
their tracebacks, the CLI's output with ``--verbose``, every Dagster event of a successful
and of a failed materialization, and every row of every table and view in the warehouse.
Each search also checks that it searched something (non-empty logs, events, rows), so the
test cannot pass by looking at nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml
from dagster._serdes import serialize_value
from pydantic import SecretStr
from sqlalchemy import event, inspect, text

from dagster_project.build import build_definitions
from kizen_sync import mapping
from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ConfigError, load_config, parse_config
from kizen_sync.demo import seed_warehouse, write_sync_file
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import AuthenticationError, SourceError, TransportError
from kizen_sync.warehouse import Source, Warehouse
from tests.support.crash_loop import cli_command
from tests.support.journal import serve
from tests.support.people import SYNC, initial_rows, project_dict, write_rows

CANARY = "canary-kz-7Q2x9LmB4vRt-SECRET"


def _assert_clean(where: str, blob: str) -> None:
    assert blob, f"{where}: nothing was captured, so nothing was checked"
    assert CANARY not in blob, f"the API key leaked into {where}"


def _dump_tables(warehouse: Warehouse) -> str:
    """Every row of every table and view, as text."""
    out = []
    with warehouse.engine.connect() as conn:
        insp = inspect(conn)
        for name in [*insp.get_table_names(), *insp.get_view_names()]:
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                out.append(f"{name}: {tuple(row)}")
    return "\n".join(out)


@pytest.fixture
def debug_logs() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger at DEBUG, httpx and httpcore included."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Keep(level=logging.DEBUG)
    saved = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore")}
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _log_text(records: list[logging.LogRecord]) -> str:
    lines = []
    for r in records:
        lines.append(f"{r.name} {r.levelname} {r.getMessage()} {r.args!r}")
        if r.exc_info:
            lines.append("".join(traceback.format_exception(*r.exc_info)))
    return "\n".join(lines)


def _error_text(exc: BaseException) -> str:
    return "\n".join(
        [
            str(exc),
            repr(exc),
            "".join(traceback.format_exception(exc)),
            json.dumps(getattr(exc, "context", {}), default=str),
            repr(getattr(exc, "body", None)),
        ]
    )


# --- logs, exceptions, audit/state tables (library) --------------------------------------------


def test_canary_key_absent_from_debug_logs_errors_and_tables(
    tmp_path: Path, debug_logs: list[logging.LogRecord]
) -> None:
    import random

    url = f"sqlite:///{tmp_path / 'wh.db'}"
    warehouse = Warehouse(url)
    emu = Emulator.demo(api_key=CANARY)
    _, user, business = emu.credentials
    try:
        write_rows(warehouse.engine, initial_rows(random.Random(3), 30))
        with serve(emu) as (base_url, _journal):
            project = parse_config(project_dict(url, base_url, emu))
            settings = ClientSettings(
                base_url=base_url,
                api_key=CANARY,
                user_id=user,
                business_id=business,
                backoff_base_s=0.001,
                backoff_max_s=0.01,
            )
            emu.set_knobs(error_rate=0.2, drop_rate=0.05, seed=4)  # retries and their logs
            report = SyncRunner(project, client_settings=settings, warehouse=warehouse).run(SYNC)
            counts = report.counts
            assert counts.created + counts.updated + counts.failed == report.planned == 30
            emu.set_knobs(error_rate=0.0, drop_rate=0.0)

            # A key the server refuses (401): the canary must not be in the error either. A
            # new row first, or the run would have nothing to send and ask Kizen nothing.
            write_rows(warehouse.engine, initial_rows(random.Random(3), 31))
            wrong = settings.model_copy(update={"api_key": SecretStr(f"{CANARY}-old")})
            with pytest.raises(AuthenticationError) as refused:
                SyncRunner(project, client_settings=wrong, warehouse=warehouse).run(SYNC)
            _assert_clean("a 401 error", _error_text(refused.value))
        # The server is gone: a transport error, raised from httpx's (whose request holds
        # the headers) with its context suppressed.
        with pytest.raises(TransportError) as dropped:
            SyncRunner(project, client_settings=settings, warehouse=warehouse).run(SYNC)
        _assert_clean("a transport error", _error_text(dropped.value))
        assert repr(settings).count("**********") == 1
        _assert_clean("ClientSettings repr", repr(settings) + str(settings))
        _assert_clean("the warehouse tables", _dump_tables(warehouse))
    finally:
        warehouse.dispose()
        emu.close()
    text_ = _log_text(debug_logs)
    assert any(r.name.startswith("httpcore") for r in debug_logs)  # DEBUG really was on
    assert any(r.name.startswith("kizen_sync") for r in debug_logs)
    _assert_clean("DEBUG logs", text_)


# --- the CLI with --verbose --------------------------------------------------------------------


def test_canary_key_absent_from_cli_verbose_output(tmp_path: Path) -> None:
    import random

    url = f"sqlite:///{tmp_path / 'wh.db'}"
    warehouse = Warehouse(url)
    emu = Emulator.demo(api_key=CANARY)
    try:
        write_rows(warehouse.engine, initial_rows(random.Random(5), 20))
        with serve(emu) as (base_url, _journal):
            config = tmp_path / "syncs.yaml"
            config.write_text(yaml.safe_dump(project_dict(url, base_url, emu)), encoding="utf-8")
            emu.set_knobs(error_rate=0.2, seed=9)
            env = {**os.environ, "KIZEN_API_KEY": CANARY, "COLUMNS": "200"}
            outputs = []
            for args in (
                ["--verbose", "run", "--config", str(config)],
                ["--verbose", "failures", "--config", str(config)],
            ):
                done = subprocess.run(
                    [*cli_command(), *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                outputs.append(done.stdout + done.stderr)
            write_rows(warehouse.engine, initial_rows(random.Random(5), 21))  # one to send
            refused = subprocess.run(
                [*cli_command(), "--verbose", "run", "--config", str(config)],
                env={**env, "KIZEN_API_KEY": f"{CANARY}-old"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert refused.returncode == 1
        assert "401" in refused.stderr
        outputs.append(refused.stdout + refused.stderr)
    finally:
        warehouse.dispose()
        emu.close()
    blob = "\n".join(outputs)
    assert "retrying" in blob  # --verbose logged the retried 5xx
    _assert_clean("the CLI's output", blob)


# --- Dagster -----------------------------------------------------------------------------------


def _events_text(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for entry in instance.all_logs(result.run_id):
        parts.append(entry.user_message or "")
        if entry.dagster_event is not None:
            parts.append(serialize_value(entry.dagster_event))
    return "\n".join(parts)


def test_canary_key_absent_from_dagster_events_and_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = Emulator.demo(api_key=CANARY)
    monkeypatch.setenv("KIZEN_API_KEY", CANARY)
    seed_warehouse(tmp_path / "warehouse.db")
    with serve(emu) as (base_url, _journal), dg.instance_for_test() as instance:
        path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["kizen"]["base_url"] = base_url
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        defs = build_definitions(path)
        asset = defs.resolve_assets_def(dg.AssetKey(["kizen", "contacts"]))
        ok = dg.materialize([asset], instance=instance, raise_on_error=False)
        assert ok.success
        assert ok.get_asset_materialization_events()
        with sqlite3.connect(tmp_path / "warehouse.db") as db:  # something to send
            db.execute("UPDATE crm_contacts SET first_name = 'Augusta' WHERE contact_id = 1")
        monkeypatch.setenv("KIZEN_API_KEY", f"{CANARY}-old")  # refused: a failed step
        refused = dg.materialize([asset], instance=instance, raise_on_error=False)
        assert not refused.success
        blob = _events_text(instance, ok) + _events_text(instance, refused)
    emu.close()
    assert "401" in blob  # the failure's error info was among the events searched
    _assert_clean("Dagster events and metadata", blob)


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_verification_is_on_unless_turned_off_explicitly_and_then_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = {"api_key": CANARY, "user_id": "u", "business_id": "b"}
    assert ClientSettings(**base).verify_tls is True
    config = parse_config({"warehouse": {"url": "sqlite://"}, "syncs": [_minimal_sync()]})
    assert config.kizen.verify_tls is True

    async def open_client(settings: ClientSettings) -> None:
        async with KizenClient(settings):
            pass

    with caplog.at_level(logging.WARNING, logger="kizen_sync.client"):
        asyncio.run(open_client(ClientSettings(**base)))
        assert not [r for r in caplog.records if "TLS" in r.getMessage()]
        asyncio.run(open_client(ClientSettings(**base, verify_tls=False)))
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    _assert_clean("the TLS warning", warnings[0].getMessage())
    with pytest.raises(ConfigError, match="verify_tls"):
        parse_config(
            {
                "warehouse": {"url": "sqlite://"},
                "kizen": {"verify_tls": "nope"},
                "syncs": [_minimal_sync()],
            }
        )


def _minimal_sync(**source: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "object": "client_client",
        "source": {"table": "people", "primary_key": ["id"], **source},
        "identity": {"match_on": "email"},
        "fields": [{"column": "email", "field": "email"}],
    }


# --- identifiers are checked against the reflected schema before any SQL ----------------------


INJECTIONS = [
    ("table", "people; DROP TABLE people; --"),
    ("table", 'people" UNION SELECT * FROM kizen_sync_sync_state --'),
    ("column", "email) FROM people; DROP TABLE people; --"),
    ("column", "email' OR '1'='1"),
]


@pytest.mark.parametrize(("where", "name"), INJECTIONS)
def test_injection_in_a_name_is_rejected_before_any_statement_carries_it(
    db: Any, where: str, name: str
) -> None:
    db.run("CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT)")
    db.run("INSERT INTO {s}people VALUES (1, 'a@example.com')")
    good = parse_config(
        {"warehouse": {"url": "sqlite://"}, "syncs": [_minimal_sync(table=db.table("people"))]}
    ).syncs[0]
    if where == "table":
        bad_source = good.source.model_construct(**{**dict(good.source), "table": name})
        bad = good.model_construct(**{**dict(good), "source": bad_source})
    else:
        mappings = [good.fields[0].model_construct(column=name, field="email")]
        bad = good.model_construct(**{**dict(good), "fields": mappings})
    # The file-level check refuses it first...
    raw = {"warehouse": {"url": "sqlite://"}, "syncs": [bad.model_dump(mode="json")]}
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        parse_config(raw)
    # ...and the warehouse-level check refuses it again, with no statement carrying it.
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.warehouse.engine, "before_cursor_execute", spy)
    try:
        with pytest.raises(SourceError) as caught:
            Source(db.warehouse, bad)
    finally:
        event.remove(db.warehouse.engine, "before_cursor_execute", spy)
    assert "is not a plain" in str(caught.value)
    assert not [s for s in seen if name in s or "DROP" in s.upper()]
    with db.warehouse.engine.connect() as conn:  # and the table is still there
        assert conn.execute(text(f"SELECT count(*) FROM {db.table('people')}")).scalar() == 1


@pytest.mark.parametrize("where", ["table", "column"])
def test_a_plain_but_unknown_name_is_rejected_after_reflection_without_being_queried(
    db: Any, where: str
) -> None:
    db.run("CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT)")
    spec = _minimal_sync(table=db.table("people" if where == "column" else "secrets"))
    if where == "column":
        spec["fields"] = [{"column": "password_hash", "field": "email"}]
    sync = parse_config({"warehouse": {"url": "sqlite://"}, "syncs": [spec]}).syncs[0]
    seen: list[str] = []
    event.listen(db.warehouse.engine, "before_cursor_execute", lambda c, cur, s, *a: seen.append(s))
    with pytest.raises(SourceError) as caught:
        Source(db.warehouse, sync)
    wanted = "secrets" if where == "table" else "password_hash"
    assert wanted in str(caught.value)
    assert not [s for s in seen if wanted in s]


# --- sensitive fields: keyed hashes only --------------------------------------------------------


def test_sensitive_fields_reach_the_audit_only_as_an_hmac(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "audit-hmac-key-for-tests"
    monkeypatch.setenv("KIZEN_SYNC_AUDIT_KEY", key)
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    warehouse = Warehouse(url)
    emu = Emulator.demo()
    secrets = {
        1: ("ann@private.example", "+13125550101"),
        2: ("bob@private.example", "+13125550102"),
        3: ("cy@private.example", "5550"),  # invalid phone: a failure that could echo it
    }
    with warehouse.engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)"))
        for i, (email, phone) in secrets.items():
            conn.execute(
                text("INSERT INTO people VALUES (:i, :e, :p)"), {"i": i, "e": email, "p": phone}
            )
    spec = _minimal_sync()
    spec["mode"] = "upsert"
    spec["fields"] = [
        {"column": "email", "field": "email", "sensitive": True},
        {"column": "phone", "field": "mobile_phone", "sensitive": True},
    ]
    project = parse_config({"warehouse": {"url": url}, "syncs": [spec]})
    _, user, business = emu.credentials
    settings = ClientSettings(
        base_url="http://emulator", api_key=emu.credentials[0], user_id=user, business_id=business
    )
    try:
        runner = SyncRunner(
            project,
            client_settings=settings,
            transport=httpx.ASGITransport(app=emu.app),
            warehouse=warehouse,
        )
        report = runner.run("s")
        assert (report.counts.created, report.counts.failed) == (2, 1)
        audit = runner.store.audit_rows(sync="s")
        assert len(audit) == 3
        blob = "\n".join(json.dumps(row, default=str) for row in audit)
        for email, phone in secrets.values():
            assert email not in blob
            assert phone.lstrip("+") not in blob
        for row in audit:
            if row["source_key"] == "3":
                assert "mobile_phone" in row["error_message"]  # readable, value withheld
                continue
            email, phone = secrets[int(row["source_key"])]
            wanted = mapping.hash_values(
                {"email": email, "mobile_phone": phone}, key.encode("utf-8")
            )
            assert row["values_hash"] == wanted
            assert row["values_hash"] != mapping.hash_values(
                {"email": email, "mobile_phone": phone}, b"another key"
            )
            assert json.loads(row["changed_fields"]) == {
                "email": "[redacted]",
                "mobile_phone": "[redacted]",
            }
    finally:
        warehouse.dispose()
        emu.close()


def test_the_sample_sync_file_keeps_the_key_out_of_the_file(tmp_path: Path) -> None:
    path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    config = load_config(path)
    assert config.kizen.api_key_env == "KIZEN_API_KEY"
    assert "api_key:" not in path.read_text(encoding="utf-8")
