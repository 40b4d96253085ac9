"""The httpx side of the client's network layer: a transport and a client class.

:class:`PoolTransport` is an ``httpx.AsyncBaseTransport`` over an
``httpcore.AsyncConnectionPool`` whose connections run on
:class:`~kizen_sync.client.network.AsyncioBackend`. Both are public extension points (httpx's
transport API, httpcore's ``network_backend=``), so nothing here depends on how httpx builds
its own default transport, and httpx is free to move within its major version. The transport
does what httpx's own ``AsyncHTTPTransport`` does for a request: convert it to httpcore's
request, map httpcore's exceptions to httpx's (``ConnectError``, ``ReadTimeout``, ...), and
wrap the response stream so that errors while reading the body are mapped too.

Mount it as ``"all://"`` rather than passing ``transport=``: httpx then still mounts the
proxies named by the environment (``trust_env``), which are more specific patterns and win.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from kizen_sync.client.network import AsyncioBackend

__all__ = ["LeanAsyncClient", "PoolTransport"]

#: httpcore exception -> httpx exception; the most specific match wins (ReadTimeout before
#: TimeoutException), as in httpx's own transport.
_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Re-raise httpcore's exceptions as the httpx ones callers catch."""
    try:
        yield
    except Exception as exc:
        mapped: type[httpx.TransportError] | None = None
        for source, target in _ERRORS.items():
            if isinstance(exc, source) and (mapped is None or issubclass(target, mapped)):
                mapped = target
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class _ResponseStream(httpx.AsyncByteStream):
    """The response body as httpx reads it, with httpcore's errors mapped."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        """Release the connection back to the pool (or close it)."""
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class PoolTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over a connection pool on :class:`AsyncioBackend`.

    Args:
        ssl_context: TLS settings for ``https://`` (verification, trusted CAs).
        limits: pool size and keep-alive, as for any httpx transport.
        network_backend: the byte streams to use (the asyncio backend unless given).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=network_backend or AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pool; the body is streamed as the caller reads it."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors():
            response = await self.pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.pool.aclose()


class _SetCookieCookies(httpx.Cookies):
    """A cookie jar that skips responses without a ``Set-Cookie`` header.

    httpx calls ``extract_cookies`` on every response; it wraps request and response in
    urllib compatibility objects before the jar finds there is nothing to store, a visible
    share of the client's CPU per request. Kizen answers API calls without cookies, but a load
    balancer may set one (stickiness), so the jar still works when one comes.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Store the response's cookies, if it sets any."""
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class LeanAsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie jar skips responses that set no cookie.

    Uses only the public ``cookies`` property, which httpx reads for every request and
    response.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = kwargs.get("cookies")

    @property
    def cookies(self) -> httpx.Cookies:
        """Cookie values to include when sending requests."""
        return self._lean_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._lean_cookies = _SetCookieCookies(cookies)
