"""A small world for in-process runs of one contacts sync: a source table, the emulator over
real HTTP, and Kizen read back from the emulator's own state (never from the run's report).

Used by the tests of what must never happen to a record: archived by a source emptied mid-run,
misrouted by a re-keyed table or an identity collision, damaged by corrupt state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kizen_sync.client import ClientSettings
from kizen_sync.config import ProjectConfig, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.warehouse import StateStore
from tests.support.journal import WRITE_METHODS, Journal, serve

__all__ = ["CONTACTS", "Contacts", "Person", "contacts_world"]

CONTACTS = "client_client"

#: ``(id, email, first_name)`` of a source row.
Person = tuple[Any, str, str]


@dataclass
class Contacts:
    """One contacts sync (``people``, e-mail identity, upsert) against one emulator."""

    db: Any  # tests.conftest.Db
    emu: Emulator
    base_url: str
    journal: Journal

    def source(self, rows: Sequence[Person], *, key_type: str = "INTEGER") -> None:
        """(Re)create the source table ``people`` holding ``rows``."""
        self.db.run("DROP TABLE IF EXISTS {s}people")
        self.db.run(
            f"CREATE TABLE {{s}}people (id {key_type} PRIMARY KEY, email TEXT, first_name TEXT)"
        )
        self.insert(rows)

    def insert(self, rows: Sequence[Person]) -> None:
        """Add ``rows`` to the source table."""
        for row in rows:
            self.db.run(
                "INSERT INTO {s}people (id, email, first_name) VALUES (:id, :email, :first)",
                {"id": row[0], "email": row[1], "first": row[2]},
            )

    def project(self, **sync: Any) -> ProjectConfig:
        """The sync file, ``sync`` overriding the sync's keys."""
        spec: dict[str, Any] = {
            "name": "people",
            "object": CONTACTS,
            "source": {"table": self.db.table("people"), "primary_key": ["id"]},
            "identity": {"match_on": "email"},
            "mode": "upsert",
            "delete": {"archive": True, "max_archive_fraction": 0.05},
            "fields": [
                {"column": "email", "field": "email"},
                {"column": "first_name", "field": "first_name"},
            ],
        } | sync
        return parse_config(
            {
                "warehouse": {
                    "url": self.db.warehouse.engine.url.render_as_string(hide_password=False),
                    "state_schema": self.db.schema,
                },
                "kizen": {"api_key_env": "KIZEN_SYNC_TEST_NO_SUCH_VAR"},
                "syncs": [spec],
            }
        )

    def settings(self) -> ClientSettings:
        """Client settings for this emulator, with short backoffs."""
        api_key, user_id, business_id = self.emu.credentials
        return ClientSettings(
            base_url=self.base_url,
            api_key=api_key,
            user_id=user_id,
            business_id=business_id,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
            max_attempts=2,
        )

    def runner(self, **sync: Any) -> SyncRunner:
        """A runner of the sync on this world's warehouse (the caller may close it)."""
        return SyncRunner(
            self.project(**sync), client_settings=self.settings(), warehouse=self.db.warehouse
        )

    def store(self) -> StateStore:
        """The connector's tables in this warehouse."""
        return StateStore(self.db.warehouse)

    def writes(self) -> int:
        """Record writes the emulator answered so far."""
        return sum(1 for e in self.journal.entries() if e.method in WRITE_METHODS)

    def kizen(self) -> dict[str, list[dict[str, Any]]]:
        """Kizen's contacts by e-mail (as stored, lower-cased key): id, first name, e-mail,
        archived; several entries when several records hold one e-mail.
        """
        out: dict[str, list[dict[str, Any]]] = {}
        for record in self.emu.records(CONTACTS, include_archived=True):
            values = {f["name"]: f.get("value") for f in record["fields"].values()}
            email = str(values.get("email") or "")
            out.setdefault(email.lower(), []).append(
                {
                    "id": record["id"],
                    "email": email,
                    "first_name": values.get("first_name"),
                    "archived": record["archived"],
                }
            )
        return out

    def live(self) -> dict[str, str | None]:
        """Live contacts as {e-mail as stored: first name}."""
        return {
            r["email"]: r["first_name"]
            for records in self.kizen().values()
            for r in records
            if not r["archived"]
        }


@contextmanager
def contacts_world(db: Any) -> Iterator[Contacts]:
    """The emulator served over HTTP with a write journal, and ``db`` as the warehouse."""
    emu = Emulator.demo()
    try:
        with serve(emu) as (base_url, journal):
            yield Contacts(db, emu, base_url, journal)
    finally:
        emu.close()
