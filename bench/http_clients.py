"""PATCH loops of the HTTP clients compared in ``bench.client_throughput``.

Each loop sends ``total`` PATCHes with ``in_flight`` concurrent workers to records ``ids`` and
reads every JSON answer, so the process's CPU time over the loop is the client's cost per
request. ``kizen-sync`` is the shipped :class:`~kizen_sync.client.KizenClient` (pacing, retries,
classification, audit capture included); ``kizen-sync-on-httpx`` is the same client with
httpx's default transport and cookie jar in place of :mod:`kizen_sync.client.transport` (what
the client costs without its own network layer); the others are bare loops with no kizen-sync
code: ``httpx`` (default transport), ``httpx-on-pool`` (httpx over kizen-sync's
:class:`~kizen_sync.client.transport.PoolTransport`) and ``aiohttp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import aiohttp
import httpx

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.client import session as session_module
from kizen_sync.client.transport import PoolTransport

__all__ = ["CLIENTS", "patch_loop"]

CLIENTS = ("kizen-sync", "kizen-sync-on-httpx", "httpx", "httpx-on-pool", "aiohttp")


def _headers(settings: ClientSettings) -> dict[str, str]:
    return {
        "X-API-KEY": settings.api_key.get_secret_value(),
        "X-USER-ID": settings.user_id,
        "X-BUSINESS-ID": settings.business_id,
        "Accept": "application/json",
    }


async def _workers(in_flight: int, total: int, send: Callable[[int], Awaitable[None]]) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await send(i)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


@contextlib.contextmanager
def _httpx_default_transport() -> Iterator[None]:
    """KizenClient's shards on httpx's own transport and cookie jar, for the comparison."""

    def default(*, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits)

    with (
        mock.patch.object(session_module, "PoolTransport", default),
        mock.patch.object(session_module, "LeanAsyncClient", httpx.AsyncClient),
    ):
        yield


async def _kizen(settings: ClientSettings, ids: list[str], total: int) -> dict[str, Any]:
    async with KizenClient(settings) as kizen:

        async def send(i: int) -> None:
            entries = [{"name": "employees", "value": i}]
            await kizen.patch_record("accounts", ids[i % len(ids)], entries)

        await _workers(settings.max_in_flight, total, send)
        return kizen.stats.as_dict()


async def _bare_httpx(
    settings: ClientSettings, ids: list[str], total: int, ctx: ssl.SSLContext, pool: bool
) -> dict[str, Any]:
    n = settings.max_in_flight
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    transport = PoolTransport(ssl_context=ctx, limits=limits) if pool else None
    async with httpx.AsyncClient(
        headers=_headers(settings), limits=limits, verify=ctx, trust_env=False, transport=transport
    ) as client:
        statuses: dict[int, int] = {}

        async def send(i: int) -> None:
            url = f"{settings.base_url}/api/records/accounts/{ids[i % len(ids)]}"
            response = await client.patch(url, json={"fields": [{"name": "employees", "value": i}]})
            response.json()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await _workers(n, total, send)
    return {"requests": total, "rate_limited": statuses.get(429, 0), "pacing_wait_s": 0.0}


async def _bare_aiohttp(
    settings: ClientSettings, ids: list[str], total: int, ctx: ssl.SSLContext
) -> dict[str, Any]:
    n = settings.max_in_flight
    connector = aiohttp.TCPConnector(limit=n, ssl=ctx)
    async with aiohttp.ClientSession(headers=_headers(settings), connector=connector) as client:
        statuses: dict[int, int] = {}

        async def send(i: int) -> None:
            url = f"{settings.base_url}/api/records/accounts/{ids[i % len(ids)]}"
            body = {"fields": [{"name": "employees", "value": i}]}
            async with client.patch(url, json=body) as response:
                await response.json()
                statuses[response.status] = statuses.get(response.status, 0) + 1

        await _workers(n, total, send)
    return {"requests": total, "rate_limited": statuses.get(429, 0), "pacing_wait_s": 0.0}


async def patch_loop(
    client: str, settings: ClientSettings, ids: list[str], total: int, ctx: ssl.SSLContext
) -> dict[str, Any]:
    """Run ``client``'s PATCH loop; return ``{requests, rate_limited, pacing_wait_s}``."""
    if client == "kizen-sync":
        stats = await _kizen(settings, ids, total)
    elif client == "kizen-sync-on-httpx":
        with _httpx_default_transport():
            stats = await _kizen(settings, ids, total)
    elif client in ("httpx", "httpx-on-pool"):
        stats = await _bare_httpx(settings, ids, total, ctx, pool=client == "httpx-on-pool")
    elif client == "aiohttp":
        stats = await _bare_aiohttp(settings, ids, total, ctx)
    else:
        raise ValueError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    return {k: stats[k] for k in ("requests", "rate_limited", "pacing_wait_s")}
