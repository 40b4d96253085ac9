"""A gate in front of an emulator: journals every request Kizen receives, and can hold writes.

Concurrency is judged from what Kizen saw, not from timings: the gate records when each
request arrived and when it was answered, and it can hold the writes of one emulator (after
letting a given number through) until the test releases them. A test can then say "while this
write is held at Kizen A, Kizen B receives writes" (two pools) or "while it is held, the other
run's step reports that it waits for the pool" (one pool), with bounded waits only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

Scope = dict[str, Any]

#: Requests that change Kizen (the emulator's write routes; search is a read by POST).
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def is_write(method: str, path: str) -> bool:
    return method in _WRITE_METHODS and path.startswith("/api/") and not path.endswith("/search")


@dataclass
class Request:
    """One request as Kizen received it (monotonic clock of the test process)."""

    method: str
    path: str
    arrived: float
    answered: float | None = None
    status: int | None = None

    @property
    def object(self) -> str:
        """The Kizen object of a records route (``/api/records/<object>/...``)."""
        parts = self.path.split("/")
        return parts[3] if len(parts) > 3 and parts[2] == "records" else ""


class Gate:
    """ASGI middleware around an emulator's app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._journal: list[Request] = []
        self._passes: int | None = None  # writes still allowed through; None: no hold
        self._held = 0

    # --- control (test thread) ------------------------------------------------------------

    def hold(self, after: int = 0) -> None:
        """Let ``after`` more writes through, then hold every later write."""
        with self._lock:
            self._passes = after

    def release(self) -> None:
        with self._lock:
            self._passes = None

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def writes(self, object_name: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self._journal
                if is_write(r.method, r.path) and (object_name is None or r.object == object_name)
            ]

    # --- ASGI -----------------------------------------------------------------------------

    def _admit(self) -> bool:
        with self._lock:
            if self._passes is None:
                return True
            if self._passes > 0:
                self._passes -= 1
                return True
            return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope["method"], scope["path"], time.monotonic())
        with self._lock:
            self._journal.append(request)
        if is_write(request.method, request.path) and not self._admit():
            with self._lock:
                self._held += 1
            try:
                while not self._admit():
                    await asyncio.sleep(0.05)
            finally:
                with self._lock:
                    self._held -= 1

        async def journaled_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                request.status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                request.answered = time.monotonic()

        await self.app(scope, receive, journaled_send)
