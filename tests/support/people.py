"""The contacts source table of the reliability runs: generated rows and seeded changes.

Rows are ``(id, email, first_name, tags, status)``; the e-mail is the identifier the sync
matches on and never changes. :func:`mutate` makes a seeded mix of creates, scalar updates,
tag changes and deletions; :func:`sync_spec` and :func:`project_dict` describe the sync.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from kizen_sync.emulator import Emulator

__all__ = [
    "CONTACTS",
    "DOMAIN",
    "SYNC",
    "TABLE",
    "Mix",
    "Row",
    "email_of",
    "initial_rows",
    "key_of",
    "mutate",
    "project_dict",
    "sync_spec",
    "write_rows",
]

CONTACTS = "client_client"
SYNC = "people"
TABLE = "people"
DOMAIN = "reliability.example"
TAGS = ("VIP", "Newsletter", "Churn Risk", "Partner", "Beta")
STATUSES = ("Opted In", "Not Opted In", "Unsubscribed From All")

Row = tuple[int, str, str, str | None, str]  # id, email, first_name, tags, status


def email_of(i: int) -> str:
    """The identifier of source row ``i`` (stable: identifiers never change in these runs)."""
    return f"r{i}@{DOMAIN}"


def key_of(email: str) -> str:
    """The source key of the row holding ``email``."""
    return email.split("@", 1)[0].removeprefix("r")


def _tags_text(rng: random.Random) -> str | None:
    chosen = sorted(rng.sample(TAGS, rng.randint(0, 3)))
    return ",".join(chosen) if chosen else None


def initial_rows(rng: random.Random, n: int, start: int = 1) -> dict[int, Row]:
    """``n`` fresh contacts with random names, tags and e-mail status."""
    return {
        i: (
            i,
            email_of(i),
            f"First{i}-{rng.randint(0, 999)}",
            _tags_text(rng),
            rng.choice(STATUSES),
        )
        for i in range(start, start + n)
    }


@dataclass
class Mix:
    """How many changes of each kind one mutation made (disjoint sets of rows)."""

    creates: int = 0
    updates: int = 0
    tag_changes: int = 0
    archives: int = 0

    @property
    def total(self) -> int:
        """Changed rows in all."""
        return self.creates + self.updates + self.tag_changes + self.archives

    def as_dict(self) -> dict[str, int]:
        """Plain form for reports."""
        return {
            "creates": self.creates,
            "updates": self.updates,
            "tag_changes": self.tag_changes,
            "archives": self.archives,
        }


def mutate(
    rows: dict[int, Row], rng: random.Random, changes: int, next_id: int
) -> tuple[dict[int, Row], Mix, set[str]]:
    """A changed copy of ``rows``: ``changes`` rows created, updated, re-tagged or deleted.

    Shares: 30 % creates, 30 % scalar updates (name and status), 25 % tag changes (at least
    one tag added or removed), 15 % deletions. Returns (rows, mix, e-mails deleted).
    """
    out = dict(rows)
    existing = sorted(rows)
    n_archive = min(len(existing) // 4, round(changes * 0.15))
    n_tags = min(len(existing) // 4, round(changes * 0.25))
    n_update = min(len(existing) // 4, round(changes * 0.30))
    n_create = changes - n_archive - n_tags - n_update
    picked = rng.sample(existing, n_archive + n_tags + n_update)
    deleted: set[str] = set()
    for i in picked[:n_archive]:
        deleted.add(out.pop(i)[1])
    for i in picked[n_archive : n_archive + n_tags]:
        row = out[i]
        current = set(row[3].split(",")) if row[3] else set()
        flip = rng.choice(TAGS)
        new = current ^ {flip}
        if rng.random() < 0.5:  # sometimes add and remove in one change
            other = rng.choice([t for t in TAGS if t != flip])
            new ^= {other}
        out[i] = (row[0], row[1], row[2], ",".join(sorted(new)) or None, row[4])
    for i in picked[n_archive + n_tags :]:
        row = out[i]
        status = rng.choice([s for s in STATUSES if s != row[4]])
        out[i] = (row[0], row[1], f"Changed{i}-{rng.randint(0, 99_999)}", row[3], status)
    out.update(initial_rows(rng, n_create, start=next_id))
    return out, Mix(n_create, n_update, n_tags, n_archive), deleted


def write_rows(engine: Engine, rows: Mapping[int, Row], table: str = TABLE) -> None:
    """Replace the source table's content with ``rows`` in one transaction."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, email TEXT NOT NULL,"
                " first_name TEXT, tags TEXT, status TEXT)"
            )
        )
        conn.execute(text(f"DELETE FROM {table}"))
        if rows:
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:id, :email, :first, :tags, :status)"),
                [
                    dict(zip(("id", "email", "first", "tags", "status"), r, strict=True))
                    for r in rows.values()
                ],
            )


def sync_spec(table: str = TABLE, **overrides: Any) -> dict[str, Any]:
    """The sync under test: contacts by e-mail, upsert, tags in managed mode, archives on."""
    return {
        "name": SYNC,
        "object": CONTACTS,
        "source": {"table": table, "primary_key": ["id"]},
        "identity": {"match_on": "email"},
        "mode": "upsert",
        "delete": {"archive": True, "max_archive_fraction": 0.5},
        "fields": [
            {"column": "email", "field": "email"},
            {"column": "first_name", "field": "first_name"},
            {"column": "tags", "field": "tags", "format": "delimited"},
            {"column": "status", "field": "email_status"},
        ],
    } | overrides


def project_dict(
    url: str, base_url: str, emu: Emulator, *, max_in_flight: int = 8, **kizen: Any
) -> dict[str, Any]:
    """A whole sync file (as data) for ``url`` and the emulator at ``base_url``."""
    _, user_id, business_id = emu.credentials
    return {
        "warehouse": {"url": url},
        "kizen": {
            "base_url": base_url,
            "user_id": user_id,
            "business_id": business_id,
            "max_in_flight": max_in_flight,
            **kizen,
        },
        "syncs": [sync_spec()],
    }
