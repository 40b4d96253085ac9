"""PATCH throughput of KizenClient against a server in a separate process.

Run: ``.venv/bin/python -m bench.client_throughput`` (``--help`` for options).

Scenarios: (a) no limit, many requests in flight; (b) a server limit of R req/s (429 +
Retry-After above it) with ``requests_per_second=R`` on the client. Reports achieved PATCH/s,
429 share and client CPU ms per request; writes ``bench/results/client_throughput.json``.

Server: the kizen-sync emulator (``python -m kizen_sync.emulator``), or ``--server stub``: a
~50-line asyncio HTTP server (fixed 20 ms latency, fixed 1 s window limit) that costs almost no
CPU, to measure the client alone on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from kizen_sync.client import ClientSettings, KizenClient

API_KEY = "demo-api-key"
USER_ID = "916dac1b-5640-4268-9324-06132f342488"
BUSINESS_ID = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
RESULTS = Path(__file__).parent / "results" / "client_throughput.json"


# --- stub server (separate process) ------------------------------------------------------


def _stub_main(port: int, latency_s: float, rate_limit: float | None) -> None:
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
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout_s} s")


@contextlib.contextmanager
def server(kind: str, latency_ms: int, rate_limit: float | None):
    """Start the server in another process; yield its base URL."""
    port = _free_port()
    if kind == "emulator":
        cmd = [sys.executable, "-m", "kizen_sync.emulator", "--port", str(port)]
        cmd += ["--latency-ms", str(latency_ms)]
        if rate_limit is not None:
            cmd += ["--rate-limit", str(rate_limit)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = proc.terminate
        join = proc.wait
    else:
        ctx = multiprocessing.get_context("spawn")
        proc_mp = ctx.Process(target=_stub_main, args=(port, latency_ms / 1000, rate_limit))
        proc_mp.start()
        stop, join = proc_mp.terminate, proc_mp.join
    try:
        _wait_ready(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop()
        join()


# --- measurement ---------------------------------------------------------------------------


async def _seed(kizen: KizenClient, n: int, in_flight: int) -> list[str]:
    ids: list[str] = []
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            name = f"bench-{os.getpid()}-{i}"
            result = await kizen.upsert_record("accounts", name, [{"name": "name", "value": name}])
            ids.append(result.record.id)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return ids


async def _patch_run(kizen: KizenClient, ids: list[str], total: int, in_flight: int) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            entries = [{"name": "employees", "value": i}]
            await kizen.patch_record("accounts", ids[i % len(ids)], entries)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def scenario(
    base_url: str, name: str, *, rate: float | None, records: int, requests: int, in_flight: int
) -> dict[str, object]:
    settings = ClientSettings(
        base_url=base_url,
        api_key=API_KEY,
        user_id=USER_ID,
        business_id=BUSINESS_ID,
        requests_per_second=rate,
        max_in_flight=in_flight,
    )
    async with KizenClient(settings) as kizen:
        ids = await _seed(kizen, records, in_flight)
        if rate is not None:
            await asyncio.sleep(1.2)  # let the server's window forget the seeding
        before = kizen.stats.as_dict()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await _patch_run(kizen, ids, requests, in_flight)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        after = kizen.stats.as_dict()
    sent = after["requests"] - before["requests"]
    limited = after["rate_limited"] - before["rate_limited"]
    ok = sent - limited
    row = {
        "scenario": name,
        "limit_rps": rate,
        "in_flight": in_flight,
        "patches": requests,
        "requests": sent,
        "elapsed_s": round(elapsed, 3),
        "patch_per_s": round(ok / elapsed, 1),
        "share_of_limit": round(ok / elapsed / rate, 3) if rate else None,
        "pct_429": round(100 * limited / sent, 3),
        "cpu_ms_per_request": round(1000 * cpu / sent, 3),
        "pacing_wait_s": after["pacing_wait_s"],
    }
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["emulator", "stub"], default="emulator")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--requests", type=int, default=8000, help="PATCHes, unlimited run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of limited runs")
    parser.add_argument("--limits", type=float, nargs="*", default=[50.0, 200.0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if (
        args.server == "emulator"
        and importlib.util.find_spec("kizen_sync.emulator.__main__") is None
    ):
        sys.exit("kizen_sync.emulator has no command line yet; use --server stub")

    rows = []
    plans: list[tuple[str, float | None, int, int]] = [
        ("unlimited", None, args.records, args.requests)
    ]
    for r in args.limits:
        total = int(r * args.seconds)
        plans.append((f"limit {r:g}/s", r, min(args.records, max(int(r), 20)), total))
    for name, rate, records, total in plans:
        in_flight = args.in_flight if rate is None else max(4, min(args.in_flight, int(rate / 10)))
        with server(args.server, args.latency_ms, rate) as base_url:
            row = asyncio.run(
                scenario(
                    base_url, name, rate=rate, records=records, requests=total, in_flight=in_flight
                )
            )
        rows.append(row)
        print(_fmt(row), flush=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "server": args.server,
        "latency_ms": args.latency_ms,
        "httpx": httpx.__version__,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


def _fmt(row: dict[str, object]) -> str:
    share = row["share_of_limit"]
    return (
        f"{row['scenario']:<14} in_flight={row['in_flight']:<3} requests={row['requests']:<6} "
        f"PATCH/s={row['patch_per_s']:<8} share={share if share is not None else '-':<6} "
        f"429%={row['pct_429']:<6} cpu_ms/req={row['cpu_ms_per_request']}"
    )


if __name__ == "__main__":
    main()
