"""In-memory record storage with the identifier index and optional SQLite write-through.

Records live in plain dicts (the request path must stay cheap); each object keeps an index
from normalised identifier (``name``, or ``email`` for contacts) to record id that includes
archived records, because Kizen keeps an archived record's identifier reserved. With a state
file every change is written through to SQLite in WAL mode with ``synchronous=OFF``: a demo
survives a restart of the emulator, and a write costs tens of microseconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Record", "RecordStore", "identifier_key"]


def identifier_key(value: str) -> str:
    """Case-insensitive, whitespace-normalised form used for uniqueness, lookup and upsert."""
    return " ".join(value.split()).casefold()


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
        self._ident: dict[str, dict[str, str]] = {}
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

    def holder(self, object_id: str, identifier: str) -> Record | None:
        """The record (live or archived) holding this identifier in the object."""
        rid = self._ident.get(object_id, {}).get(identifier_key(identifier))
        return self.by_id.get(rid) if rid else None

    def identifier_taken(self, object_id: str, identifier: str) -> bool:
        """True when any record of the object holds this identifier."""
        return identifier_key(identifier) in self._ident.get(object_id, {})

    def save(self, record: Record, identifier: str | None) -> None:
        """Insert or replace a record, re-index its identifier and write it through."""
        self._index(record, identifier_key(identifier) if identifier else None)
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

    def _index(self, record: Record, key: str | None) -> None:
        index = self._ident.setdefault(record.object_id, {})
        if record.indexed_as is not None and index.get(record.indexed_as) == record.id:
            del index[record.indexed_as]
        record.indexed_as = key
        if key is not None:
            index[key] = record.id
        self.by_id[record.id] = record
        self.by_object.setdefault(record.object_id, {})[record.id] = record
