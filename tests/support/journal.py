"""The emulator served over real HTTP on 127.0.0.1, with a journal of every record write.

The emulator's own request log counts requests per route and status, which is enough for
fault counts but cannot say *which* record a write touched; the re-sends of a crash need that,
so :func:`serve` wraps the emulator's ASGI app in a :class:`Journal`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect

from kizen_sync.emulator import Emulator

__all__ = ["Journal", "JournalEntry", "serve"]

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class JournalEntry:
    """One record write the emulator answered (or dropped).

    Attributes:
        seq: position in the journal (0-based).
        method: HTTP method.
        path: URL path.
        status: status the emulator started its answer with (``None`` if it never did).
        dropped: the connection was cut on purpose after the answer started.
        identifier: ``lookup_value`` of an upsert.
        record_id: the record addressed (from the path, or the answer of an upsert/add).
    """

    seq: int
    method: str
    path: str
    status: int | None
    dropped: bool
    identifier: str | None
    record_id: str | None

    @property
    def applied(self) -> bool:
        """The emulator processed the write and said so with a 2xx."""
        return self.status is not None and 200 <= self.status < 300 and not self.dropped


class Journal:
    """ASGI wrapper around the emulator app that records every write to a record.

    The emulator's own request log counts requests per route and status, which is enough for
    fault counts but cannot say *which* record a write touched; re-sends per crash need that.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self, start: int = 0, end: int | None = None) -> list[JournalEntry]:
        """A copy of the entries ``[start, end)``."""
        with self._lock:
            return list(self._entries[start:end])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request through, remembering its body, status and answer."""
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not path.startswith("/api/records/")
        ):
            await self.app(scope, receive, send)
            return
        body, answer = bytearray(), bytearray()
        status: list[int | None] = [None]

        async def receive_body() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        dropped = False
        try:
            await self.app(scope, receive_body, send_answer)
        except Exception:
            dropped = True
            raise
        finally:
            self._add(scope["method"], path, status[0], dropped, bytes(body), bytes(answer))

    def _add(
        self, method: str, path: str, status: int | None, dropped: bool, body: bytes, answer: bytes
    ) -> None:
        parts = path.strip("/").split("/")  # api, records, object, id|upsert|add[, unarchive]
        identifier = record_id = None
        if len(parts) >= 4 and parts[3] not in ("upsert", "add"):
            record_id = parts[3].lower()
        else:
            request, response = _json(body), _json(answer)
            if isinstance(request, dict):
                identifier = request.get("lookup_value")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                record_id = response["id"].lower()
        with self._lock:
            entry = JournalEntry(
                len(self._entries), method, path, status, dropped, identifier, record_id
            )
            self._entries.append(entry)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class _QuietDisconnects(logging.Filter):
    """Drop uvicorn's traceback for a request body cut by ``kill -9``: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ClientDisconnect)


@contextmanager
def serve(emu: Emulator) -> Iterator[tuple[str, Journal]]:
    """Serve ``emu`` over real HTTP on 127.0.0.1 with a :class:`Journal`; yield (url, journal)."""
    inner = emu.app
    journal = Journal(inner)
    emu.app = journal  # type: ignore[assignment]  # serve() hands self.app to uvicorn
    quiet = _QuietDisconnects()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        with emu.serve(host="127.0.0.1", port=0) as base_url:
            yield base_url, journal
    finally:
        emu.app = inner
        logging.getLogger("uvicorn.error").removeFilter(quiet)
