"""A ~50-line asyncio HTTP/1.1 server that costs almost no CPU, for client-only measurements.

Fixed latency, an optional fixed one-second-window rate limit (429 + ``Retry-After: 1``), and
optionally TLS with a certificate made for the run (``trustme``), so that the client's own CPU
per request can be measured over HTTPS, as real Kizen is served. It runs in a separate process
(:func:`stub_server`), so its CPU never mixes with the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import socket
import ssl
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["Stub", "free_port", "stub_server"]


def _serve(port: int, latency_s: float, rate_limit: float | None, cert_chain: str | None) -> None:
    window = [0, 0]  # [second, count]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(latency_s)
                now = int(time.monotonic())
                if window[0] != now:
                    window[:] = [now, 0]
                window[1] += 1
                path = target.split("?", 1)[0]
                if rate_limit is not None and window[1] > rate_limit:
                    status, extra, body = "429 Too Many Requests", "Retry-After: 1\r\n", b"{}"
                else:
                    rid = path.rsplit("/", 1)[-1] if method == "PATCH" else str(uuid.uuid4())
                    payload = {"id": rid, "object_type": "standard", "fields": {}}
                    if path.endswith("/upsert"):
                        payload["action"] = "created"
                    status, extra, body = "200 OK", "", json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        tls = None
        if cert_chain is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert_chain)
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=tls)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"stub server on port {port} did not start within {timeout_s} s")


@dataclass(frozen=True)
class Stub:
    """A running stub: its base URL and, over TLS, the CA file that signed its certificate."""

    base_url: str
    ca_file: str | None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this stub (the system's CAs when it is plain HTTP)."""
        return ssl.create_default_context(cafile=self.ca_file)


@contextlib.contextmanager
def stub_server(latency_ms: float, rate_limit: float | None, *, tls: bool) -> Iterator[Stub]:
    """Run the stub in another process until the block exits."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kizen-stub-") as tmp:
        chain = ca_file = None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            chain, ca_file = str(Path(tmp) / "server.pem"), str(Path(tmp) / "ca.pem")
            cert.private_key_and_cert_chain_pem.write_to_path(chain)
            ca.cert_pem.write_to_path(ca_file)
        ctx = multiprocessing.get_context("spawn")
        process = ctx.Process(target=_serve, args=(port, latency_ms / 1000, rate_limit, chain))
        process.start()
        try:
            _wait_ready(port)
            scheme = "https" if tls else "http"
            yield Stub(f"{scheme}://127.0.0.1:{port}", ca_file)
        finally:
            process.terminate()
            process.join()
