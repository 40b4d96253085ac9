"""The world of one bad-input check, and what a check is.

A :class:`Lab` holds an in-process emulator (no network) and a SQLite warehouse in a temporary
directory; a :class:`BadInput` names a class of bad input, what the user should see, and the
check that builds the situation in a lab and asserts the outcome. :func:`run_case` runs one
check in a fresh lab.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from kizen_sync.client import ClientSettings
from kizen_sync.config import ProjectConfig, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.warehouse import Warehouse

__all__ = [
    "ACCOUNTS",
    "CONTACTS",
    "ERROR",
    "FAILS",
    "SYNCED",
    "WRITES",
    "BadInput",
    "Lab",
    "lab",
    "run_case",
]

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


def run_case(case: BadInput) -> None:
    """Run one case in a fresh lab (raises AssertionError when the behaviour is wrong)."""
    with lab() as world:
        case.check(world)
