"""Shared world of the integration tests: a source table of people, the sync file that maps
it to Kizen contacts, and the emulator serving over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ProjectConfig, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner

CONTACTS = "client_client"


def people(db: Any, rows: list[tuple[Any, ...]]) -> None:
    """(Re)create the source table ``people`` with ``rows``."""
    db.run("DROP TABLE IF EXISTS {s}people")
    db.run(
        "CREATE TABLE {s}people (id INTEGER PRIMARY KEY, email TEXT NOT NULL, "
        "first_name TEXT, tags TEXT, status TEXT)"
    )
    for row in rows:
        db.run(
            "INSERT INTO {s}people VALUES (:id, :email, :first, :tags, :status)",
            dict(zip(("id", "email", "first", "tags", "status"), row, strict=True)),
        )


def person(i: int, **changes: Any) -> tuple[Any, ...]:
    values = {
        "email": f"p{i}@example.com",
        "first": f"Person{i}",
        "tags": "VIP,Newsletter" if i % 2 else "Beta",
        "status": "Opted In",
    } | changes
    return (i, values["email"], values["first"], values["tags"], values["status"])


def project(db: Any, **sync: Any) -> ProjectConfig:
    spec: dict[str, Any] = {
        "name": "contacts",
        "object": CONTACTS,
        "source": {"table": db.table("people"), "primary_key": ["id"]},
        "identity": {"match_on": "email"},
        "mode": "upsert",
        "fields": [
            {"column": "email", "field": "email"},
            {"column": "first_name", "field": "first_name"},
            {"column": "tags", "field": "tags", "format": "delimited"},
            {"column": "status", "field": "email_status"},
        ],
    } | sync
    return parse_config(
        {
            "warehouse": {
                "url": db.warehouse.engine.url.render_as_string(hide_password=False),
                "state_schema": db.schema,
            },
            "kizen": {"api_key_env": "KIZEN_SYNC_TEST_NO_SUCH_VAR"},
            "syncs": [spec],
        }
    )


@dataclass
class Env:
    db: Any  # conftest.Db
    emu: Emulator
    base_url: str

    def settings(self, **overrides: Any) -> ClientSettings:
        api_key, user_id, business_id = self.emu.credentials
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": api_key,
            "user_id": user_id,
            "business_id": business_id,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "max_retry_after_s": 0.05,
            "max_attempts": 2,
        }
        return ClientSettings(**(values | overrides))

    def runner(self, **sync: Any) -> SyncRunner:
        return SyncRunner(
            project(self.db, **sync), client_settings=self.settings(), warehouse=self.db.warehouse
        )

    def writes(self) -> int:
        log = self.emu.request_log
        return sum(log.total(method=m) for m in ("POST", "PATCH", "PUT", "DELETE"))

    def contacts(self) -> dict[str, dict[str, Any]]:
        """Live contacts by email: {email: {first_name, tags (names), email_status}}."""

        async def read() -> dict[str, dict[str, Any]]:
            async with KizenClient(self.settings()) as client:
                out = {}
                async for rec in client.iter_records(CONTACTS, page_size=1000):
                    email = rec.value("email")
                    if email and email.startswith("p"):
                        status = rec.value("email_status")
                        out[email] = {
                            "first_name": rec.value("first_name"),
                            "tags": sorted(t["name"] for t in rec.value("tags") or []),
                            "email_status": status["name"] if status else None,
                        }
                return out

        return asyncio.run(read())


@pytest.fixture
def env(db: Any) -> Iterator[Env]:
    emu = Emulator.demo()
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        yield Env(db, emu, base_url)
