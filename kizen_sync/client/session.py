"""One Kizen API call = paced, classified and retried HTTP attempts over pooled connections.

:class:`Session` owns the httpx clients (several "shards" when many requests are in flight:
one ``httpx.AsyncClient`` slows down sharply above ~20 concurrent requests, see
reliability-performance.md 3.4), the :class:`~kizen_sync.client.pacing.Pacer`, the counters
and the tenacity retry policy. Endpoint methods live in :mod:`kizen_sync.client.client`.

CPU per request is the client's ceiling on a 2-core machine (~1 ms budgeted per request,
reliability-performance.md G5), so the hot path makes a few choices, each justified where it is
made: the asyncio network backend (:mod:`kizen_sync.client.network`) and the cookie jar of
:mod:`kizen_sync.client.transport`, absolute URLs, the tenacity-free first attempt
(:meth:`Session.call`) and a few requests per shard (:data:`SHARD_SIZE`). What each one saves
is measured in ``bench/README.md`` (client CPU per request).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from kizen_sync.client.attempts import AttemptInfo, ClientStats, record_attempt
from kizen_sync.client.classify import decode_body, error_from_response, error_from_transport
from kizen_sync.client.pacing import Pacer, Sleep
from kizen_sync.client.transport import LeanAsyncClient, PoolTransport
from kizen_sync.errors import (
    KizenAPIError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from kizen_sync.settings import ClientSettings

__all__ = ["Session"]

logger = logging.getLogger("kizen_sync.client")

#: Requests in flight per httpx.AsyncClient before another shard is opened. httpcore scans
#: every pooled connection on each request, so per-request CPU grows with the pool size;
#: 4 was the cheapest of 2, 4, 8 and 16 at 16 to 48 in flight (bench/README.md).
SHARD_SIZE = 4

Params = Mapping[str, str | int | bool]


def _retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Retry 429 always (the server did nothing); 5xx and dropped connections only when
    repeating the request is harmless, or the connection was never made.
    """
    if isinstance(exc, RateLimitedError):
        return True
    if isinstance(exc, TransportError):
        return idempotent or bool(getattr(exc, "unsent", False))
    return isinstance(exc, ServerError) and idempotent


class _Stop:
    """Stop rule: ``max_attempts`` attempts not answered 429, or the call's time budget.

    A 429 only costs time: waiting for a rate limit must not exhaust the attempts meant for
    real failures. The budget check includes the coming sleep (``stop_before_delay``), so a
    call never sleeps past its budget just to fail afterwards.
    """

    def __init__(self, max_attempts: int, budget_s: float, *, offset_s: float = 0.0) -> None:
        self.max_attempts = max_attempts
        self.budget_s = budget_s
        self.offset_s = offset_s  # time the call spent before tenacity started
        self.counted = 0

    def __call__(self, rs: RetryCallState) -> bool:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        if not isinstance(exc, RateLimitedError):
            self.counted += 1
        if self.counted >= self.max_attempts:
            return True
        elapsed = self.offset_s + (rs.seconds_since_start or 0.0)
        return elapsed + rs.upcoming_sleep > self.budget_s


class Session:
    """Sends API calls for one :class:`~kizen_sync.client.KizenClient`.

    Args:
        settings: connection, pacing and retry settings.
        transport: an httpx transport to use instead of the network (tests, ASGI); one
            shard is opened then, since there is no pool to spread over.
        sleep: async sleep used by pacing and retries (tests may inject a fake).
    """

    def __init__(
        self,
        settings: ClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self.pacer = Pacer(
            rate=settings.paced_rate,
            burst=settings.effective_burst,
            max_in_flight=settings.max_in_flight,
            adaptive=settings.adaptive,
            sleep=sleep,
        )
        self._sleep = sleep
        self._base_url = settings.base_url
        shards = 1 if transport is not None else math.ceil(settings.max_in_flight / SHARD_SIZE)
        per_shard = math.ceil(settings.max_in_flight / shards)
        headers = {
            "X-API-KEY": settings.api_key.get_secret_value(),
            "X-USER-ID": settings.user_id,
            "X-BUSINESS-ID": settings.business_id,
            "User-Agent": settings.user_agent,
            "Accept": "application/json",
        }
        if not settings.verify_tls:
            logger.warning(
                "TLS certificate verification is OFF for %s (verify_tls=False); "
                "use this only against a local emulator",
                settings.base_url,
            )
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        # One TLS context for every shard and proxy: building one loads the CA bundle.
        ssl_context = httpx.create_ssl_context(
            verify=settings.verify_tls, trust_env=settings.trust_env
        )
        self._clients = [
            LeanAsyncClient(
                base_url=settings.base_url,
                headers=headers,
                timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
                limits=limits,
                verify=ssl_context,
                trust_env=settings.trust_env,
                transport=transport,
                mounts=None
                if transport is not None
                else {"all://": PoolTransport(ssl_context=ssl_context, limits=limits)},
            )
            for _ in range(shards)
        ]
        self._in_flight = [0] * shards
        self._wait_exp = wait_random_exponential(
            multiplier=settings.backoff_base_s, max=settings.backoff_max_s
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self._clients:
            await client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        entries: Sequence[Mapping[str, Any]] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one API call with retries; return the decoded JSON body (``None`` if empty).

        Args:
            method: HTTP method.
            path: path under the base URL (``/api/...``), already quoted.
            params: query parameters.
            json: request body.
            entries: the body's ``fields`` list, to tie a 400's messages to entries.
            idempotent: False for requests that may not be repeated once they reached the
                server (record creation): then only 429 and unsent requests are retried.

        Raises:
            KizenAPIError: the classified failure of the last attempt.
        """
        self.stats.calls += 1
        started = time.monotonic()
        # Fast path: the first attempt runs without tenacity. Building an AsyncRetrying and
        # driving its iterator costs CPU on every call, for calls that almost always succeed
        # at once; tenacity takes over on a retryable failure, with the first attempt's
        # outcome and elapsed time carried in.
        try:
            return await self._attempt(method, path, params, json, entries, 1)
        except KizenAPIError as exc:
            if not _retryable(exc, idempotent=idempotent):
                raise
            first = exc
        return await self._retry(method, path, params, json, entries, idempotent, first, started)

    async def _retry(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        entries: Sequence[Mapping[str, Any]] | None,
        idempotent: bool,
        first: KizenAPIError,
        started: float,
    ) -> Any:
        """Attempts 2.. of a call whose first attempt failed with the retryable ``first``.

        Tenacity's attempt 1 replays ``first`` (no request), so its stop, wait and
        before_sleep rules see exactly the sequence they saw when tenacity ran every attempt;
        the budget counts from the call's start (``started``), not from here.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: _retryable(e, idempotent=idempotent)),
            stop=_Stop(
                self.settings.max_attempts,
                self.settings.retry_budget_s,
                offset_s=time.monotonic() - started,
            ),
            wait=self._wait,
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first
                return await self._attempt(method, path, params, body, entries, number)
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        entries: Sequence[Mapping[str, Any]] | None,
        number: int,
    ) -> Any:
        waited_before = self.pacer.waited_s
        await self.pacer.acquire()
        self.stats.pacing_wait_s += self.pacer.waited_s - waited_before
        shard = min(range(len(self._clients)), key=self._in_flight.__getitem__)
        self._in_flight[shard] += 1
        started = datetime.now(UTC)
        error: KizenAPIError | None = None
        status: int | None = None
        result: Any = None
        try:
            # An absolute URL: httpx parses it once instead of parsing the relative path and
            # then re-parsing it merged into base_url.
            response = await self._clients[shard].request(
                method, self._base_url + path, params=params, json=body
            )
        except httpx.TransportError as exc:
            error = error_from_transport(exc, method=method, path=path)
        else:
            status = response.status_code
            if 200 <= status < 300:
                result = decode_body(response)
            else:
                error = error_from_response(response, method=method, path=path, entries=entries)
        finally:
            self._in_flight[shard] -= 1
            self.pacer.release()
        self.stats.requests += 1
        self.stats.by_status[status] += 1
        if status == 429:
            self.stats.rate_limited += 1
        self.pacer.on_result(status, getattr(error, "retry_after", None))
        record_attempt(AttemptInfo(number, status, error, started, datetime.now(UTC)))
        if error is not None:
            # ``from None``: the httpx cause holds the request, whose headers hold the key.
            raise error from None
        return result

    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            capped = min(float(retry_after), self.settings.max_retry_after_s)
            return capped + random.uniform(0, self.settings.backoff_base_s)
        return float(self._wait_exp(rs))

    def _before_sleep(self, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        self.stats.retries += 1
        self.stats.backoff_wait_s += rs.upcoming_sleep
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "retrying %s %s (attempt %d, status %s, waiting %.2f s)",
                getattr(exc, "method", "?"),
                getattr(exc, "path", "?"),
                rs.attempt_number,
                getattr(exc, "status", None) or type(exc).__name__,
                rs.upcoming_sleep,
            )
