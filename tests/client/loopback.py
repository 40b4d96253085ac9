"""A small asyncio HTTP/1.1 server on 127.0.0.1 (plain or TLS) for the network-layer tests.

It runs on the test's own event loop, records what it received (raw first reads, requests,
connections, TLS versions) and answers with a handler the test gives. Certificates come from
``trustme``: a throwaway CA per test session, never the system's trust store.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

RECORD = "7f1e2d3c-0000-4000-8000-000000000001"
ENTRIES = [{"name": "employees", "value": 5}]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Seen"], Awaitable[None]]


class Seen:
    """What the server received: raw first reads, requests, connections, TLS versions."""

    def __init__(self) -> None:
        self.first_reads: list[bytes] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0
        self.tls_versions: list[str] = []
        self.closed = asyncio.Event()  # set by handlers that hang up on purpose


async def read_request(
    reader: asyncio.StreamReader, seen: Seen
) -> tuple[str, dict[str, str], bytes] | None:
    """Read one HTTP/1.1 request; ``None`` at end of stream."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await reader.read(65536)
        if not chunk:
            return None
        if not head:
            seen.first_reads.append(chunk)
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = rest
    while len(body) < length:
        body += await reader.read(length - len(body))
    request = (lines[0], headers, body)
    seen.requests.append(request)
    return request


def respond(
    writer: asyncio.StreamWriter, payload: object, *, status: str = "200 OK", extra: str = ""
) -> None:
    """Write one JSON response (keep-alive unless ``extra`` says otherwise)."""
    body = json.dumps(payload).encode()
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def echo_record(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    """Answer every request on the connection with the same record."""
    while await read_request(reader, seen) is not None:
        respond(writer, {"id": RECORD, "fields": {}})
        await writer.drain()


@asynccontextmanager
async def serve(
    handler: Handler = echo_record, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """Serve ``handler`` on a free port; yield (base URL, what was seen)."""
    seen = Seen()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            seen.tls_versions.append(ssl_object.version())
        try:
            await handler(reader, writer, seen)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", seen
    finally:
        server.close()
