"""The asyncio network backend (``kizen_sync.client.network``) on real loopback sockets.

Below httpx and httpcore: timeouts and end of stream, and back-pressure on large bodies over
TLS in both directions. Kernel socket buffers are pinned small on both ends, so that what the
peer manages to push or pull is bounded by the backend's own buffering rather than by how
much the kernel happens to absorb on this machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl

import httpcore
import pytest
import trustme
from loopback import serve

from kizen_sync.client import network
from kizen_sync.client.network import AsyncioBackend, AsyncioStream

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024
BODY = 16 * 1024 * 1024  # 64x the backend's read high-water mark
KERNEL_BUFFER = 64 * 1024  # SO_SNDBUF / SO_RCVBUF asked for (Linux doubles it)
#: What a paused reader may still hold: the high-water mark plus one delivery from the
#: transport (asyncio reads at most 256 KiB per call).
READ_BOUND = network._READ_HIGH_WATER + 256 * 1024
#: Bytes a sender can be ahead of its reader with back-pressure on both ends: both kernels'
#: buffers (doubled), the reader's buffer, TLS records in flight on each side, one chunk.
LAG_BOUND = 4 * 2 * KERNEL_BUFFER + READ_BOUND + 2 * 256 * 1024 + CHUNK


def _pin(sock: socket.socket | None, option: int) -> None:
    assert sock is not None
    sock.setsockopt(socket.SOL_SOCKET, option, KERNEL_BUFFER)


async def _until(condition, what: str) -> None:
    """Wait for ``condition()``; the bound only guards against a hang, never a speed."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} never happened")


async def _tls_stream(url: str, ca: trustme.CA) -> AsyncioStream:
    port = int(url.rsplit(":", 1)[1])
    plain = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=60)
    _pin(plain.get_extra_info("socket"), socket.SO_RCVBUF)
    _pin(plain.get_extra_info("socket"), socket.SO_SNDBUF)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    stream = await plain.start_tls(context, server_hostname="localhost", timeout=60)
    assert isinstance(stream, AsyncioStream)
    assert stream.get_extra_info("ssl_object") is not None
    return stream


async def test_backend_read_timeout_and_end_of_stream():
    async def slow_then_close(reader, writer, seen):
        await reader.read(100)
        await asyncio.sleep(0.3)
        writer.write(b"late")
        await writer.drain()

    async with serve(slow_then_close) as (url, _seen):
        port = int(url.rsplit(":", 1)[1])
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"hello")
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.05)
        assert await stream.read(100, timeout=5) == b"late"
        assert await stream.read(100, timeout=5) == b""  # the server hung up
        assert stream.get_extra_info("is_readable")
        await stream.aclose()
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more")


async def test_a_large_body_is_received_with_bounded_buffering_over_tls(server_tls, ca):
    payload = bytes(range(256)) * (CHUNK // 256)
    sent = [0]

    async def large_body(reader, writer, seen):
        _pin(writer.get_extra_info("socket"), socket.SO_SNDBUF)
        while sent[0] < BODY:
            writer.write(payload)
            await writer.drain()
            sent[0] += len(payload)
        writer.close()

    async with serve(large_body, tls=server_tls) as (url, _seen):
        stream = await _tls_stream(url, ca)
        proto = stream._protocol
        # Nobody reads: the backend stops reading from the socket at its high-water mark...
        await _until(lambda: proto.reading_paused, "pausing the reader")
        assert proto.buffered <= READ_BOUND
        held = proto.buffered
        for _ in range(200):
            await asyncio.sleep(0)
        assert proto.buffered == held  # ...and takes nothing more in while paused
        assert sent[0] < BODY  # so the server could not push the whole body
        received, digest, lag = 0, hashlib.sha256(), 0
        while chunk := await stream.read(CHUNK, timeout=60):
            received += len(chunk)
            digest.update(chunk)
            lag = max(lag, sent[0] - received)
            assert proto.buffered <= READ_BOUND
        await stream.aclose()
    assert received == BODY
    assert digest.digest() == hashlib.sha256(payload * (BODY // CHUNK)).digest()
    assert lag <= LAG_BOUND


async def test_a_large_upload_waits_for_a_slow_reader_over_tls(server_tls, ca):
    start_reading = asyncio.Event()
    received = [0]
    digest = hashlib.sha256()

    async def slow_reader(reader, writer, seen):
        _pin(writer.get_extra_info("socket"), socket.SO_RCVBUF)
        await start_reading.wait()
        while chunk := await reader.read(CHUNK):
            received[0] += len(chunk)
            digest.update(chunk)
        writer.close()

    payload = bytes(range(256)) * (CHUNK // 256)
    produced = [0]
    async with serve(slow_reader, tls=server_tls) as (url, _seen):
        stream = await _tls_stream(url, ca)
        proto = stream._protocol

        async def upload() -> None:
            while produced[0] < BODY:
                await stream.write(payload, timeout=60)
                produced[0] += len(payload)

        task = asyncio.create_task(upload())
        # The server reads nothing yet: the writer must end up waiting, not buffering.
        await _until(lambda: proto.writing_paused, "pausing the writer")
        for _ in range(200):
            await asyncio.sleep(0)
        assert not task.done()
        assert produced[0] < BODY
        assert proto.transport is not None
        assert proto.transport.get_write_buffer_size() <= LAG_BOUND
        start_reading.set()
        await task
        await stream.aclose()
        await _until(lambda: received[0] == BODY, "receiving the whole upload")
    assert digest.digest() == hashlib.sha256(payload * (BODY // CHUNK)).digest()
