"""State in a database of its own (``warehouse.state``): DuckDB source rows, PostgreSQL state.

The diff still runs in the source warehouse, against a mirror of the sync's fingerprints that
each diff loads there; the state, audit, runs and lease tables live only in the state
database. Judged from outside: what Kizen holds, and which tables each database has.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.warehouse import Warehouse

CONTACTS = "client_client"


def _people(url: str, rows: list[tuple[int, str, str, str]]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS people"))
        conn.execute(
            text("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first TEXT, tags TEXT)")
        )
        for row in rows:
            conn.execute(
                text("INSERT INTO people VALUES (:i, :e, :f, :t)"),
                dict(zip("ieft", row, strict=True)),
            )
    engine.dispose()


def _contacts(emu: Emulator, base_url: str) -> dict[str, tuple[str, list[str]]]:
    api_key, user_id, business_id = emu.credentials
    settings = ClientSettings(
        base_url=base_url, api_key=api_key, user_id=user_id, business_id=business_id
    )

    async def read() -> dict[str, tuple[str, list[str]]]:
        async with KizenClient(settings) as client:
            return {
                rec.value("email"): (
                    rec.value("first_name"),
                    sorted(t["name"] for t in rec.value("tags") or []),
                )
                async for rec in client.iter_records(CONTACTS, page_size=1000)
                if str(rec.value("email") or "").startswith("s")
            }

    return asyncio.run(read())


@pytest.mark.postgres
def test_state_in_postgresql_beside_a_duckdb_source(
    tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    source = f"duckdb:///{tmp_path / 'source.duckdb'}"
    rows = [
        (i, f"s{i}@example.com", f"Name{i}", "VIP,Beta" if i % 2 else "Beta") for i in range(1, 7)
    ]
    _people(source, rows)
    emu = Emulator.demo()
    _, user_id, business_id = emu.credentials
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        config = parse_config(
            {
                "warehouse": {
                    "url": source,
                    "state_schema": pg_schema,
                    "state": {"url": pg_url},
                },
                "kizen": {"base_url": base_url, "user_id": user_id, "business_id": business_id},
                "syncs": [
                    {
                        "name": "contacts",
                        "object": CONTACTS,
                        "source": {"table": "people", "primary_key": ["id"]},
                        "identity": {"match_on": "email"},
                        "mode": "upsert",
                        "delete": {"max_archive_fraction": 0.5},
                        "fields": [
                            {"column": "email", "field": "email"},
                            {"column": "first", "field": "first_name"},
                            {"column": "tags", "field": "tags", "format": "delimited"},
                        ],
                    }
                ],
            }
        )
        runner = SyncRunner(config, client_settings=_settings(emu, base_url))
        try:
            assert runner.run("contacts").counts.created == 6
            assert runner.run("contacts").planned == 0  # nothing changed: nothing planned

            # Row 1 renamed, row 3 loses its VIP tag, row 6 deleted.
            changed = [r for r in rows if r[0] != 6]
            changed[0] = (1, "s1@example.com", "Renamed", "VIP,Beta")
            changed[2] = (3, "s3@example.com", "Name3", "Beta")
            _people(source, changed)
            report = runner.run("contacts")
            assert (report.counts.updated, report.counts.archived) == (2, 1)
        finally:
            runner.close()
        kizen = _contacts(emu, base_url)
    assert kizen["s1@example.com"] == ("Renamed", ["Beta", "VIP"])
    assert kizen["s3@example.com"] == ("Name3", ["Beta"])  # the removal needed the state's values
    assert "s6@example.com" not in kizen

    duck = create_engine(source)
    try:
        assert sorted(inspect(duck).get_table_names()) == ["kizen_sync_state_mirror", "people"]
    finally:
        duck.dispose()
    pg = Warehouse(pg_url, state_schema=pg_schema)
    try:
        with pg.connect() as conn:
            tables = set(inspect(conn).get_table_names(schema=pg_schema))
            audit = conn.execute(
                text(f'SELECT count(*) FROM "{pg_schema}".kizen_sync_audit')
            ).scalar_one()
    finally:
        pg.dispose()
    assert {
        "kizen_sync_sync_state",
        "kizen_sync_audit",
        "kizen_sync_runs",
        "kizen_sync_leases",
    } <= tables
    assert audit == 9  # 6 creates, 2 updates, 1 archive


def _settings(emu: Emulator, base_url: str) -> ClientSettings:
    api_key, user_id, business_id = emu.credentials
    return ClientSettings(
        base_url=base_url, api_key=api_key, user_id=user_id, business_id=business_id
    )


def test_a_state_url_is_validated_like_the_warehouse_url() -> None:
    from kizen_sync.errors import ConfigError

    spec: dict[str, Any] = {
        "name": "s",
        "object": "accounts",
        "source": {"table": "t", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "n", "field": "name"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"warehouse": {"url": "sqlite://", "state": {"url": "oracle://x"}}, "syncs": [spec]}
        )
    assert "warehouse dialect 'oracle' is not supported" in str(caught.value)


def test_the_scratch_schema_of_the_sync_file_is_created_in_the_source(tmp_path: Path) -> None:
    """``warehouse.state.scratch_schema`` as the README writes it: a schema the source does
    not have yet. The first diff creates it and keeps the mirror there, nowhere else.
    """
    from kizen_sync.config import SyncConfig
    from kizen_sync.warehouse import ChangeDetector

    source_url = f"duckdb:///{tmp_path / 'source.duckdb'}"
    _people(source_url, [(i, f"s{i}@example.com", f"Name{i}", "Beta") for i in range(1, 4)])
    state = Warehouse(f"sqlite:///{tmp_path / 'state.db'}")
    warehouse = Warehouse(source_url, state=state, scratch_schema="kizen_scratch")
    sync = SyncConfig.model_validate(
        {
            "name": "contacts",
            "object": CONTACTS,
            "source": {"table": "people", "primary_key": ["id"]},
            "identity": {"match_on": "email"},
            "fields": [
                {"column": "email", "field": "email"},
                {"column": "first", "field": "first_name"},
            ],
        }
    )
    try:
        detector = ChangeDetector(warehouse, sync)
        assert detector.counts().new == 3
        assert detector.archive_counts().synced == 0  # a second diff finds the schema there
        with warehouse.connect() as conn:
            assert inspect(conn).get_table_names(schema="kizen_scratch") == [
                "kizen_sync_state_mirror"
            ]
            assert inspect(conn).get_table_names(schema="main") == ["people"]
    finally:
        warehouse.dispose()
        state.dispose()
