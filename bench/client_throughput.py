"""PATCH throughput and CPU per request of HTTP clients against a server in another process.

Run: ``.venv/bin/python -m bench.client_throughput`` (``--help`` for options).

Scenarios: (a) no limit, many requests in flight; (b) a server limit of R req/s (429 +
Retry-After above it) with ``requests_per_second=R`` on the client (kizen-sync only). Reports
achieved PATCH/s, 429 share and client CPU ms per request; writes
``bench/results/client_throughput.json``.

Server: the kizen-sync emulator (``python -m kizen_sync.emulator``), or ``--server stub``: a
small asyncio server (:mod:`bench.stub_server`, fixed latency, fixed 1 s window limit, TLS with
``--tls``) that costs almost no CPU, to measure the client alone on a 2-core machine.
Clients (``--client``, repeatable): see :mod:`bench.http_clients`; ``--repeats`` runs the
unlimited scenario that many times per client, interleaved, so that a disturbance of the
shared machine does not land on one client only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.http_clients import CLIENTS, patch_loop
from bench.machine import load_average
from bench.stub_server import Stub, free_port, stub_server
from kizen_sync.client import ClientSettings, KizenClient

API_KEY = "demo-api-key"
USER_ID = "916dac1b-5640-4268-9324-06132f342488"
BUSINESS_ID = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
RESULTS = Path(__file__).parent / "results" / "client_throughput.json"


@contextlib.contextmanager
def emulator(latency_ms: int, rate_limit: float | None) -> Iterator[Stub]:
    """``python -m kizen_sync.emulator`` in another process (plain HTTP)."""
    port = free_port()
    cmd = [sys.executable, "-m", "kizen_sync.emulator", "--port", str(port)]
    cmd += ["--latency-ms", str(latency_ms)]
    if rate_limit is not None:
        cmd += ["--rate-limit", str(rate_limit)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{base_url}/_emulator/knobs", timeout=1.0, trust_env=False)
                break
            time.sleep(0.05)
        yield Stub(base_url, None)
    finally:
        proc.terminate()
        proc.wait()


def server(kind: str, latency_ms: int, rate_limit: float | None, tls: bool):
    """The server of one scenario, in its own process."""
    if kind == "emulator":
        return emulator(latency_ms, rate_limit)
    return stub_server(latency_ms, rate_limit, tls=tls)


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


async def scenario(
    stub: Stub,
    name: str,
    client: str,
    *,
    rate: float | None,
    records: int,
    requests: int,
    in_flight: int,
) -> dict[str, object]:
    """Seed ``records`` records, then time ``requests`` PATCHes of ``client``."""
    settings = ClientSettings(
        base_url=stub.base_url,
        api_key=API_KEY,
        user_id=USER_ID,
        business_id=BUSINESS_ID,
        requests_per_second=rate,
        max_in_flight=in_flight,
    )
    if stub.ca_file is not None:
        # KizenClient trusts what the environment names (trust_env), as a user would set it.
        os.environ["SSL_CERT_FILE"] = stub.ca_file
    async with KizenClient(settings) as kizen:
        ids = await _seed(kizen, records, in_flight)
    if rate is not None:
        await asyncio.sleep(1.2)  # let the server's window forget the seeding
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats = await patch_loop(client, settings, ids, requests, stub.ssl_context())
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sent, limited = stats["requests"], stats["rate_limited"]
    ok = sent - limited
    return {
        "scenario": name,
        "client": client,
        "tls": stub.base_url.startswith("https"),
        "limit_rps": rate,
        "in_flight": in_flight,
        "patches": requests,
        "requests": sent,
        "elapsed_s": round(elapsed, 3),
        "patch_per_s": round(ok / elapsed, 1),
        "share_of_limit": round(ok / elapsed / rate, 3) if rate else None,
        "pct_429": round(100 * limited / sent, 3),
        "cpu_ms_per_request": round(1000 * cpu / sent, 3),
        "pacing_wait_s": stats["pacing_wait_s"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--server", choices=["emulator", "stub"], default="emulator")
    parser.add_argument("--tls", action="store_true", help="HTTPS (stub server only)")
    parser.add_argument("--client", choices=CLIENTS, action="append", help="repeatable")
    parser.add_argument("--repeats", type=int, default=1, help="unlimited runs per client")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--requests", type=int, default=8000, help="PATCHes, unlimited run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of limited runs")
    parser.add_argument("--limits", type=float, nargs="*", default=[50.0, 200.0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.tls and args.server != "stub":
        parser.error("--tls needs --server stub (the emulator serves plain HTTP)")
    clients = args.client or ["kizen-sync"]
    plans: list[tuple[str, str, float | None, int, int]] = [
        ("unlimited", client, None, args.records, args.requests)
        for _ in range(args.repeats)
        for client in clients
    ]
    if "kizen-sync" in clients:
        for r in args.limits:
            total = int(r * args.seconds)
            records = min(args.records, max(int(r), 20))
            plans.append((f"limit {r:g}/s", "kizen-sync", r, records, total))
    load_start = load_average()
    rows = []
    for name, client, rate, records, total in plans:
        in_flight = args.in_flight if rate is None else max(4, min(args.in_flight, int(rate / 10)))
        with server(args.server, args.latency_ms, rate, args.tls) as stub:
            row = asyncio.run(
                scenario(
                    stub,
                    name,
                    client,
                    rate=rate,
                    records=records,
                    requests=total,
                    in_flight=in_flight,
                )
            )
        rows.append(row)
        print(_fmt(row), flush=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "server": args.server,
        "tls": args.tls,
        "latency_ms": args.latency_ms,
        "httpx": httpx.__version__,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": [load_start, load_average()],
    }
    args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


def _fmt(row: dict[str, object]) -> str:
    share = row["share_of_limit"]
    return (
        f"{row['client']:<20} {row['scenario']:<14} in_flight={row['in_flight']:<3} "
        f"requests={row['requests']:<6} PATCH/s={row['patch_per_s']:<8} "
        f"share={share if share is not None else '-':<6} "
        f"429%={row['pct_429']:<6} cpu_ms/req={row['cpu_ms_per_request']}"
    )


if __name__ == "__main__":
    main()
