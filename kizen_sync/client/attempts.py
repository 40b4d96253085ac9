"""Per-attempt capture for the audit table, and per-client counters.

:func:`capture_attempts` uses a :class:`contextvars.ContextVar`, so every asyncio task that
opens its own capture sees only the attempts it made, even when hundreds of records are
applied concurrently through one client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kizen_sync.errors import KizenSyncError

__all__ = ["AttemptInfo", "ClientStats", "capture_attempts", "record_attempt"]


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One HTTP attempt: its number within the call, the status (``None`` when no response
    arrived), the error it raised (``None`` on success) and when it ran (UTC).
    """

    attempt: int
    status: int | None
    error: KizenSyncError | None
    started_at: datetime
    finished_at: datetime


_sink: ContextVar[list[AttemptInfo] | None] = ContextVar("kizen_sync_attempts", default=None)


@contextmanager
def capture_attempts() -> Iterator[list[AttemptInfo]]:
    """Collect one :class:`AttemptInfo` per HTTP attempt made inside the block.

    Example::

        with capture_attempts() as attempts:
            await client.patch_record("accounts", record_id, entries)
        audit.write(attempts=len(attempts), last_status=attempts[-1].status)
    """
    attempts: list[AttemptInfo] = []
    token = _sink.set(attempts)
    try:
        yield attempts
    finally:
        _sink.reset(token)


def record_attempt(info: AttemptInfo) -> None:
    """Append ``info`` to the active capture, if there is one."""
    sink = _sink.get()
    if sink is not None:
        sink.append(info)


@dataclass
class ClientStats:
    """Counters of one client, for benchmarks and the reliability report.

    Attributes:
        requests: HTTP attempts sent (including retries).
        calls: client method calls that issued at least one request.
        by_status: attempts per HTTP status; ``None`` counts attempts without a response.
        retries: attempts beyond the first of a call.
        rate_limited: attempts answered 429.
        pacing_wait_s: seconds spent waiting for the client-side rate limiter.
        backoff_wait_s: seconds spent sleeping between attempts (backoff and Retry-After).
    """

    requests: int = 0
    calls: int = 0
    by_status: Counter[int | None] = field(default_factory=Counter)
    retries: int = 0
    rate_limited: int = 0
    pacing_wait_s: float = 0.0
    backoff_wait_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot (``None`` status reported as ``"transport"``)."""
        return {
            "requests": self.requests,
            "calls": self.calls,
            "by_status": {
                ("transport" if k is None else str(k)): v
                for k, v in sorted(
                    self.by_status.items(), key=lambda kv: -1 if kv[0] is None else kv[0]
                )
            },
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "pacing_wait_s": round(self.pacing_wait_s, 3),
            "backoff_wait_s": round(self.backoff_wait_s, 3),
        }
