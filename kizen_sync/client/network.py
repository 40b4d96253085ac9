"""An httpcore network backend on plain asyncio transports: the client's byte streams.

Why: on a 2-core machine the client's CPU per request is its ceiling, and most of that CPU is
spent in the HTTP stack rather than in kizen-sync. httpcore's default backend runs every socket
operation through AnyIO, and its connection pool asks every pooled connection whether it is
readable on every request (encode/httpx#3215): through AnyIO that rebuilds the socket's
attribute dict (a ``getpeername`` syscall) and polls the socket. A custom network backend is
httpcore's supported extension point for exactly this (``network_backend=``), so
:class:`AsyncioBackend` keeps httpcore's pool, h11 parsing, TLS and timeouts and replaces only
the byte stream: an :class:`asyncio.Protocol` whose readability is a flag (no syscall), whose
timeout is one timer handle instead of a cancel scope, and whose writes made in one step of
the task (request head + body) leave in one ``send``. TLS is asyncio's own
(``loop.start_tls``). Under an event loop other than asyncio (trio via AnyIO) it hands over to
httpcore's own :class:`httpcore.AnyIOBackend`. The figures are in ``bench/README.md``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore

__all__ = ["AsyncioBackend", "AsyncioStream"]

#: Pause reading from the socket while this many received bytes wait to be consumed.
_READ_HIGH_WATER = 256 * 1024
#: Send at once (without waiting for the end of the task's step) above this many bytes.
_WRITE_COALESCE_MAX = 64 * 1024


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the socket delivers and wakes the one reader/writer waiting on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER and not self.reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too: an HTTP/1.1 client never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake_reader()
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter, self.read_waiter = self.read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error())


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore's ``AsyncNetworkStream``.

    Writes are queued and sent in one ``transport.write`` when the task next reads (httpcore
    always reads the response after writing a request) or at the end of the loop iteration,
    so a request's head and body share one syscall and one TCP segment.
    """

    def __init__(self, protocol: _StreamProtocol) -> None:
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_scheduled = False
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` received bytes; ``b""`` at end of stream."""
        proto = self._protocol
        if self._pending:
            self._flush()
        if not proto.chunks:
            if self._closed:
                raise httpcore.ReadError("connection closed")
            if not (proto.eof or proto.lost):
                await self._wait(proto, "read_waiter", timeout, httpcore.ReadTimeout)
            if not proto.chunks:
                if proto.error is not None and not proto.eof:
                    raise httpcore.ReadError(str(proto.error) or type(proto.error).__name__)
                return b""
        data = proto.chunks.popleft()
        if len(data) > max_bytes:
            proto.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        proto.buffered -= len(data)
        if proto.reading_paused and proto.buffered <= _READ_HIGH_WATER // 4:
            proto.reading_paused = False
            if proto.transport is not None and not proto.transport.is_closing():
                proto.transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Queue ``buffer``; send when the task reads, the step ends, or 64 KiB are queued."""
        if not buffer:
            return
        proto = self._protocol
        if self._closed or proto.lost or proto.transport is None or proto.transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._pending.append(bytes(buffer))
        self._pending_size += len(buffer)
        if self._pending_size >= _WRITE_COALESCE_MAX:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            proto.loop.call_soon(self._flush)
        if proto.writing_paused:
            await self._wait(proto, "drain_waiter", timeout, httpcore.WriteTimeout)
            if proto.lost:
                raise httpcore.WriteError("connection lost while sending")

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    @staticmethod
    async def _wait(
        proto: _StreamProtocol, slot: str, timeout: float | None, error: type[Exception]
    ) -> None:
        waiter: asyncio.Future[None] = proto.loop.create_future()
        setattr(proto, slot, waiter)
        timer = None if timeout is None else proto.loop.call_later(timeout, _expire, waiter, error)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if getattr(proto, slot) is waiter:
                setattr(proto, slot, None)

    async def aclose(self) -> None:
        """Send what is queued, then close (idempotent)."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade this connection to TLS (asyncio's ``loop.start_tls``)."""
        proto = self._protocol
        assert proto.transport is not None
        self._flush()
        try:
            transport = await asyncio.wait_for(
                proto.loop.start_tls(
                    proto.transport, proto, ssl_context, server_hostname=server_hostname
                ),
                timeout,
            )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # pragma: no cover - only for server_side=True
            raise httpcore.ConnectError("TLS upgrade failed")
        proto.transport = transport
        return AsyncioStream(proto)

    def get_extra_info(self, info: str) -> Any:
        """``is_readable`` (without a syscall), ``ssl_object``, ``client_addr``,
        ``server_addr``, ``socket``: what httpcore and httpx ask for.
        """
        proto = self._protocol
        if info == "is_readable":
            # Readable while idle = the server sent something or hung up: the same test
            # httpcore makes with select/poll, from the state the event loop already keeps.
            return bool(proto.chunks) or proto.eof or proto.lost
        transport = proto.transport
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


def _apply_options(
    transport: asyncio.BaseTransport, options: Iterable[httpcore.SOCKET_OPTION] | None
) -> None:
    sock = transport.get_extra_info("socket")
    for option in options or ():
        sock.setsockopt(*option)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend on plain asyncio transports (AnyIO under other loops)."""

    def __init__(self) -> None:
        self._fallback: httpcore.AsyncNetworkBackend | None = None

    def _other(self) -> httpcore.AsyncNetworkBackend:
        if self._fallback is None:
            self._fallback = httpcore.AnyIOBackend()
        return self._fallback

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a TCP connection (``TCP_NODELAY`` is asyncio's default)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return await self._other().connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        local = None if local_address is None else (local_address, 0)
        return await _open(
            lambda proto: loop.create_connection(lambda: proto, host, port, local_addr=local),
            loop,
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a Unix socket connection."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return await self._other().connect_unix_socket(path, timeout, socket_options)
        return await _open(
            lambda proto: loop.create_unix_connection(lambda: proto, path),
            loop,
            timeout,
            socket_options,
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            await self._other().sleep(seconds)
        else:
            await asyncio.sleep(seconds)


async def _open(
    connect: Callable[[_StreamProtocol], Awaitable[tuple[asyncio.BaseTransport, Any]]],
    loop: asyncio.AbstractEventLoop,
    timeout: float | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> AsyncioStream:
    """Run ``connect`` with a fresh protocol, mapping failures to httpcore's errors."""
    proto = _StreamProtocol(loop)
    try:
        transport, _ = await asyncio.wait_for(connect(proto), timeout)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    _apply_options(transport, socket_options)
    return AsyncioStream(proto)
