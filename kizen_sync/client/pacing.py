"""Client-side pacing: a token bucket, an in-flight cap and AIMD for unknown limits.

Why hand-written rather than aiolimiter: the adaptive mode changes the rate on the fly and
pauses every caller for a server-given ``Retry-After``, and the tests drive the bucket with a
fake clock; a GCRA-style bucket (one "theoretical arrival time" per limiter, O(1) per call,
no polling) is ~40 lines and does all three. Measured guidance (reliability-performance.md
3.2): size the bucket at the rate with a *small* burst; a 1 s burst collides with
fixed-window limits on the server (``ClientSettings.effective_burst`` keeps burst plus rate
within the limit).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["AdaptiveRate", "Pacer", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Reservation-based token bucket (GCRA): ``reserve`` says how long a caller must wait.

    Every reservation is committed at once, so callers are served in arrival order and a
    burst of ``burst`` requests passes immediately after idle time, then one every
    ``1 / rate`` seconds. ``rate=None`` means unlimited. ``pause_until`` holds back every
    caller until a point in time (a server's ``Retry-After`` applied to the whole client).
    """

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        self.burst = max(1, burst)
        self._tat = float("-inf")
        self.paused_until = float("-inf")
        self.rate = rate

    @property
    def rate(self) -> float | None:
        """Tokens per second (``None`` = unlimited)."""
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._rate = value
        self._interval = 0.0 if value is None else 1.0 / value

    def reserve(self, now: float) -> float:
        """Take one token; return the seconds the caller must wait before sending."""
        base = max(now, self.paused_until)
        if self._rate is None:
            return base - now
        tat = max(self._tat, base)
        start = max(base, tat - (self.burst - 1) * self._interval)
        self._tat = tat + self._interval
        return start - now

    def pause(self, now: float, seconds: float) -> None:
        """Hold back every caller for ``seconds`` from ``now`` (never shortens a pause)."""
        self.paused_until = max(self.paused_until, now + seconds)


class AdaptiveRate:
    """AIMD on the request rate, for servers whose limit is unknown.

    Multiplicative decrease: on a 429 the rate halves (at most once per ``cooldown_s``, so
    one burst of 429s counts once, like TCP's once-per-RTT rule). Before any 429 the rate is
    unlimited; the first 429 starts from half the rate measured over the last second.
    Additive increase: every ``interval_s`` without a 429 *in which the bucket held callers
    back* (there is no point raising a limit nobody reaches), the rate climbs by 10 % of the
    rate last seen failing until it is back at 90 % of it, then probes by 2 %: the sawtooth
    spends most of its time near the limit instead of averaging 75 % of it.
    """

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        ceiling: float | None = None,
        floor: float = 1.0,
        interval_s: float = 0.5,
        cooldown_s: float = 1.0,
    ) -> None:
        self.bucket = bucket
        self.ceiling = ceiling
        self.floor = floor
        self.interval_s = interval_s
        self.cooldown_s = cooldown_s
        self.last_failing_rate: float | None = None
        self._last_change = float("-inf")
        self._last_decrease = float("-inf")
        self._saturated = False
        self._starts: deque[float] = deque()

    def on_start(self, now: float, waited: float) -> None:
        """Record one request start (and whether the bucket made it wait)."""
        if waited > 0:
            self._saturated = True
        if self.bucket.rate is None:
            self._starts.append(now)
            while self._starts and self._starts[0] <= now - 1.0:
                self._starts.popleft()

    def on_success(self, now: float) -> None:
        """A call was not rate limited: climb if a quiet interval has passed."""
        if now - self._last_change < self.interval_s:
            return
        rate = self.bucket.rate
        if rate is not None and self._saturated:
            ref = self.last_failing_rate or rate
            step = 0.1 * ref if rate < 0.9 * ref else max(0.5, 0.02 * ref)
            new = rate + step
            self.bucket.rate = min(new, self.ceiling) if self.ceiling is not None else new
        self._saturated = False
        self._last_change = now

    def on_rate_limited(self, now: float, retry_after: float | None) -> None:
        """A 429 arrived: halve the rate and pause the whole client for ``retry_after``."""
        if retry_after:
            self.bucket.pause(now, retry_after)
        if now - self._last_decrease < self.cooldown_s:
            return
        rate = self.bucket.rate
        if rate is None:
            while self._starts and self._starts[0] <= now - 1.0:
                self._starts.popleft()
            rate = float(max(len(self._starts), 1))
            self._starts.clear()
        self.last_failing_rate = rate
        self.bucket.rate = max(self.floor, rate * 0.5)
        self._last_decrease = self._last_change = now
        self._saturated = False


class Pacer:
    """Gate every HTTP attempt: an in-flight slot first, then a rate token.

    The slot is taken before the token so a token is never spent waiting for a slot, and
    before the request reaches httpx's pool (queued pool waiters are expensive, see
    reliability-performance.md 3.4). ``waited_s`` accumulates time spent waiting for tokens.
    """

    def __init__(
        self,
        *,
        rate: float | None,
        burst: int,
        max_in_flight: int,
        adaptive: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bucket = TokenBucket(None if adaptive and rate is None else rate, burst)
        self.adaptive = AdaptiveRate(self.bucket, ceiling=rate) if adaptive else None
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._clock = clock
        self._sleep = sleep
        self.waited_s = 0.0

    async def acquire(self) -> None:
        """Wait for an in-flight slot and a token; the caller must :meth:`release`."""
        await self._slots.acquire()
        try:
            now = self._clock()
            delay = self.bucket.reserve(now)
            if delay > 0:
                await self._sleep(delay)
            # A pause set while we slept (another call got a 429) still applies.
            late = self.bucket.paused_until - self._clock()
            if late > 0:
                await self._sleep(late)
                delay += late
        except BaseException:
            self._slots.release()
            raise
        if delay > 0:
            self.waited_s += delay
        if self.adaptive is not None:
            self.adaptive.on_start(now + max(delay, 0.0), delay)

    def release(self) -> None:
        """Give back the in-flight slot."""
        self._slots.release()

    def on_result(self, status: int | None, retry_after: float | None) -> None:
        """Feed an attempt's outcome to the adaptive controller (no-op when fixed)."""
        if self.adaptive is None:
            return
        if status == 429:
            self.adaptive.on_rate_limited(self._clock(), retry_after)
        elif status is not None and status < 500:
            self.adaptive.on_success(self._clock())
