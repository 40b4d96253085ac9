"""In-memory record storage with the identifier index and optional SQLite write-through.

Records live in plain dicts (the request path must stay cheap); each object keeps two indexes
from identifier (``name``, or ``email`` for contacts) to the records holding it, archived ones
included (Kizen keeps an archived record's identifier reserved): one by the identifier exactly
as written (``lookup`` is exact and case-sensitive, AE) and one case-folded (``upsert``
matches ``__iexact``, AE). Names are not unique in real businesses (Kizen's CLI: ``create``
duplicates them), so an identifier can be held by several records; "first" means first
created. With a state file every change is written through to SQLite in WAL mode with
``synchronous=OFF``: a demo survives a restart of the emulator, and a write costs tens of
microseconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Record", "RecordStore", "iexact_key"]


def iexact_key(value: str) -> str:
    """The form Django's ``__iexact`` compares: case folded, whitespace kept as written."""
    return value.casefold()


@dataclass
class Record:
    """One record: stored values keyed by field id, plus system attributes."""

    id: str
    object_id: str
    created: str
    updated: str
    values: dict[str, Any] = field(default_factory=dict)
    archived: bool = False
    indexed_as: str | None = None
    seq: int = -1


class RecordStore:
    """All records of the business, indexed by id, by object and by identifier.

    Args:
        state_path: SQLite file for write-through persistence, or ``None`` for memory only.

    The ``lock`` serialises access between the server thread and a test's thread; handlers
    never await while holding it, so it is uncontended on the hot path.
    """

    def __init__(self, state_path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.by_id: dict[str, Record] = {}
        self.by_object: dict[str, dict[str, Record]] = {}
        # object id -> identifier (exact / case folded) -> ids of the records holding it
        self._exact: dict[str, dict[str, list[str]]] = {}
        self._folded: dict[str, dict[str, list[str]]] = {}
        self._seq = 0
        self._db: sqlite3.Connection | None = None
        if state_path is not None:
            self._db = sqlite3.connect(
                str(state_path), check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, object_id TEXT NOT NULL,"
                " archived INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,"
                " indexed_as TEXT, data TEXT NOT NULL)"
            )

    def load(self) -> bool:
        """Load persisted records; ``False`` when there is no state yet (seed the business)."""
        if self._db is None:
            return False
        rows = self._db.execute(
            "SELECT id, object_id, archived, created, updated, indexed_as, data"
            " FROM records ORDER BY rowid"
        ).fetchall()
        for rid, oid, archived, created, updated, indexed_as, data in rows:
            record = Record(
                id=rid,
                object_id=oid,
                created=created,
                updated=updated,
                values=json.loads(data),
                archived=bool(archived),
            )
            self._index(record, indexed_as)
        return bool(rows)

    def close(self) -> None:
        """Close the state file (records stay readable in memory)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def objects_records(self, object_id: str) -> dict[str, Record]:
        """Records of one object in creation order (archived included)."""
        return self.by_object.get(object_id, {})

    def holders(self, object_id: str, identifier: str, *, exact: bool) -> list[Record]:
        """Records (live and archived) holding this identifier, first created first.

        ``exact`` compares as written (lookup); otherwise case-insensitively (upsert).
        """
        index = self._exact if exact else self._folded
        key = identifier if exact else iexact_key(identifier)
        found = [self.by_id[rid] for rid in index.get(object_id, {}).get(key, ())]
        return sorted(found, key=lambda r: r.seq)

    def identifier_taken(self, object_id: str, identifier: str) -> bool:
        """True when any record of the object holds this identifier (case-insensitively)."""
        return bool(self._folded.get(object_id, {}).get(iexact_key(identifier)))

    def save(self, record: Record, identifier: str | None) -> None:
        """Insert or replace a record, re-index its identifier and write it through."""
        self._index(record, identifier or None)
        if self._db is not None:
            self._db.execute(
                "INSERT INTO records (id, object_id, archived, created, updated, indexed_as, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " archived=excluded.archived, updated=excluded.updated,"
                " indexed_as=excluded.indexed_as, data=excluded.data",
                (
                    record.id,
                    record.object_id,
                    int(record.archived),
                    record.created,
                    record.updated,
                    record.indexed_as,
                    json.dumps(record.values),
                ),
            )

    def _index(self, record: Record, identifier: str | None) -> None:
        if record.seq < 0:
            record.seq = self._seq
            self._seq += 1
        old = record.indexed_as
        if old != identifier:
            if old is not None:
                for index, key in ((self._exact, old), (self._folded, iexact_key(old))):
                    holders = index.get(record.object_id, {}).get(key)
                    if holders and record.id in holders:
                        holders.remove(record.id)
            if identifier is not None:
                for index, key in (
                    (self._exact, identifier),
                    (self._folded, iexact_key(identifier)),
                ):
                    index.setdefault(record.object_id, {}).setdefault(key, []).append(record.id)
            record.indexed_as = identifier
        self.by_id[record.id] = record
        self.by_object.setdefault(record.object_id, {})[record.id] = record
