"""Fault and load knobs, the rate limiter and the request log.

Knobs exist so tests, demos and benchmarks can make the emulator slow, strict or flaky on
purpose; they are changed at runtime through ``PATCH /_emulator/knobs`` or
:meth:`Emulator.set_knobs`. The rate limit is a *fixed one-second window* (requests are
counted per wall-clock second of ``time.monotonic()``); a refused request gets 429 with
``Retry-After`` set to the whole seconds until the window resets (always 1).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

__all__ = ["DROPPED_STATUS", "Faults", "Knobs", "RateLimiter", "RequestLog"]

#: Status recorded in the request log for a connection dropped by ``drop_rate``.
DROPPED_STATUS = 0


@dataclass(frozen=True)
class Knobs:
    """Behaviour switches of the emulator.

    Attributes:
        latency_ms: added to every ``/api`` response (asynchronous sleep, so it overlaps).
        rate_limit_rps: requests allowed per one-second window; ``None`` = unlimited.
        error_rate: probability of a random 500/502/503 before the request is processed.
        drop_rate: probability of dropping the connection; half of the drops happen after
            the request was processed (a write is then applied but unconfirmed).
        slow_rate: probability of holding a response back by ``slow_ms`` *after* the request
            was processed: past a client's timeout a write is then applied but unconfirmed,
            the case a retry (or the next run) must repeat harmlessly.
        slow_ms: the extra delay of a slow response.
        seed: seed of the random generator behind ``error_rate``, ``drop_rate`` and
            ``slow_rate``.
        strict: refuse every request shape the evidence does not confirm or document
            (:mod:`kizen_sync.emulator.evidence`), answer ``unarchive`` with an empty
            object and leave the field list out of the object detail (both unknown): a run
            against a strict emulator shows where a sync depends on an unverified shape.
        ignored_fields: API names of fields whose writes are accepted and not applied:
            what Kizen may do with a shape it does not understand, and what read-after-write
            verification exists to catch.
    """

    latency_ms: float = 0.0
    rate_limit_rps: float | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    seed: int | None = None
    strict: bool = False
    ignored_fields: tuple[str, ...] = ()

    def updated(self, changes: dict[str, Any]) -> Knobs:
        """A copy with ``changes`` applied and checked.

        Raises:
            ValueError: an unknown knob or a value out of range (the message says which).
        """
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}")
        if isinstance(changes.get("ignored_fields"), list):
            changes = {**changes, "ignored_fields": tuple(changes["ignored_fields"])}
        new = replace(self, **changes)
        _check_number("latency_ms", new.latency_ms, low=0)
        _check_number("slow_ms", new.slow_ms, low=0)
        if new.rate_limit_rps is not None:
            _check_number("rate_limit_rps", new.rate_limit_rps, low=0, strict=True)
        for name in ("error_rate", "drop_rate", "slow_rate"):
            _check_number(name, getattr(new, name), low=0, high=1)
        if new.seed is not None and (isinstance(new.seed, bool) or not isinstance(new.seed, int)):
            raise ValueError("seed must be an integer or null")
        if not isinstance(new.strict, bool):
            raise ValueError("strict must be true or false")
        if not isinstance(new.ignored_fields, tuple) or not all(
            isinstance(name, str) for name in new.ignored_fields
        ):
            raise ValueError("ignored_fields must be a list of field API names")
        return new

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the admin endpoint."""
        return asdict(self)


def _check_number(
    name: str, value: Any, *, low: float, high: float | None = None, strict: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if value < low or (strict and value == low) or (high is not None and value > high):
        bounds = (
            f"in [{low}, {high}]" if high is not None else f"> {low}" if strict else f">= {low}"
        )
        raise ValueError(f"{name} must be {bounds}")


class RateLimiter:
    """Fixed one-second window counter (see the module docstring)."""

    def __init__(self) -> None:
        self._window = -1
        self._count = 0

    def allow(self, limit: float | None) -> int | None:
        """``None`` when the request may proceed, else the ``Retry-After`` seconds."""
        if limit is None:
            return None
        now = time.monotonic()
        window = int(now)
        if window != self._window:
            self._window, self._count = window, 0
        if self._count >= limit:
            return max(1, math.ceil(window + 1 - now))
        self._count += 1
        return None


class RequestLog:
    """Counts of handled requests per (method, route template, status).

    Unmatched paths are logged under the route ``(unmatched)``; dropped connections under the
    status :data:`DROPPED_STATUS`. Injected faults are also counted by kind (:meth:`faults`),
    because a slow response and a drop after processing look like ordinary answers by status.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._faults: Counter[str] = Counter()

    def add(self, method: str, route: str, status: int) -> None:
        """Count one request."""
        with self._lock:
            self._counts[(method, route, status)] += 1

    def add_fault(self, kind: str) -> None:
        """Count one injected fault (``throttled``, ``error``, ``drop_before``, ``drop_after``,
        ``slow``).
        """
        with self._lock:
            self._faults[kind] += 1

    def faults(self) -> dict[str, int]:
        """A snapshot ``{fault kind: n}`` of the faults injected since the last reset."""
        with self._lock:
            return dict(self._faults)

    def counts(self) -> dict[tuple[str, str, int], int]:
        """A snapshot ``{(method, route, status): n}``."""
        with self._lock:
            return dict(self._counts)

    def total(
        self, method: str | None = None, route: str | None = None, status: int | None = None
    ) -> int:
        """Requests matching every given criterion."""
        return sum(
            n
            for (m, r, s), n in self.counts().items()
            if (method is None or m == method)
            and (route is None or r == route)
            and (status is None or s == status)
        )

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()
            self._faults.clear()

    def as_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/requests``."""
        rows = [
            {"method": m, "route": r, "status": s, "count": n}
            for (m, r, s), n in sorted(self.counts().items())
        ]
        return {
            "total": sum(row["count"] for row in rows),
            "counts": rows,
            "faults": self.faults(),
        }


class Faults:
    """The random draws behind ``error_rate`` and ``drop_rate``, reseedable at runtime."""

    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the sequence so a given seed reproduces the same faults."""
        self.rng = random.Random(seed)

    def error_status(self, rate: float) -> int | None:
        """500/502/503 with probability ``rate``."""
        if rate and self.rng.random() < rate:
            return self.rng.choice((500, 502, 503))
        return None

    def slow(self, rate: float) -> bool:
        """True with probability ``rate`` (no draw at all when ``rate`` is 0, so enabling
        this knob does not shift the fault sequence of existing seeds).
        """
        return bool(rate) and self.rng.random() < rate

    def drop(self, rate: float) -> str | None:
        """``"before"`` or ``"after"`` (processing) with probability ``rate``, else ``None``."""
        if rate and self.rng.random() < rate:
            return "after" if self.rng.random() < 0.5 else "before"
        return None
