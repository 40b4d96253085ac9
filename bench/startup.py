"""Start-up cost of the CLI: ``python -m bench.startup`` prints the median of N runs of

- ``import kizen_sync.cli`` (what every command pays before it does anything),
- ``kizen-sync --help``,
- a no-change ``kizen-sync run`` of the demo's two syncs (warehouse diff, nothing to send),
  against the emulator in its own process.

Each is a fresh interpreter with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed from
the children's environment after one warm-up run), since that is how an installed CLI runs.
Figures in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def _median_s(argv: list[str], runs: int, env: dict[str, str], *, ok: int = 0) -> float:
    """Median wall time of ``argv``; its exit status must be ``ok`` or 0."""

    def once() -> None:
        done = subprocess.run(argv, env=env, check=False, capture_output=True, timeout=300)
        if done.returncode not in (0, ok):
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]!r}")

    once()  # warm-up: compiles and caches the bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Measure and print the three figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = _env()
    cli = str(BIN / "kizen-sync")
    figures = {
        "import kizen_sync.cli": _median_s(
            [sys.executable, "-c", "import kizen_sync.cli"], args.runs, env
        ),
        "kizen-sync --help": _median_s([cli, "--help"], args.runs, env),
    }
    workdir = Path(tempfile.mkdtemp(prefix="kizen-startup-"))
    port = _free_port()
    server = None
    try:
        subprocess.run(
            [cli, "demo", "--workdir", str(workdir)], env=env, check=True, capture_output=True
        )
        server = subprocess.Popen(
            [cli, "emulator", "--port", str(port), "--state", str(workdir / "kizen_emulator.db")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/_emulator/requests", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        run_env = _env(KIZEN_BASE_URL=base, KIZEN_API_KEY="demo-api-key")
        argv = [cli, "run", "--config", str(workdir / "syncs.yaml")]
        subprocess.run(argv, env=run_env, check=False, capture_output=True)  # settle the demo
        # The demo leaves one invalid row (exit 1 while it is open): the run still diffs
        # both syncs and sends nothing new, which is what is timed.
        figures["no-change run (demo, 2 syncs)"] = _median_s(argv, args.runs, run_env, ok=1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(map(len, figures))
    for name, seconds in figures.items():
        print(f"{name:<{width}}  {seconds:6.2f} s  (median of {args.runs})")


if __name__ == "__main__":
    main()
