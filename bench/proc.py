"""Processes the bench starts: the emulator server and one-shot measurement workers.

The emulator always runs in a process of its own (``python -m kizen_sync.emulator``), so the
client's CPU time and the server's never mix on this 2-core machine. Every measurement runs
in a fresh worker process (``python -m bench.worker``) so that its CPU time and its peak
memory (VmHWM) belong to that measurement alone. Both are stopped in ``finally`` blocks, and
every wait is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

__all__ = ["EmulatorProcess", "WorkerError", "free_port", "run_worker", "start_emulator"]

ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


class WorkerError(RuntimeError):
    """A worker process failed or timed out; the message carries the end of its stderr."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmulatorProcess:
    """A running emulator: its base URL, its admin API, and its CPU counter."""

    base_url: str
    process: subprocess.Popen[bytes]
    admin: httpx.Client

    def reset_log(self) -> None:
        """Forget the request counts (``POST /_emulator/reset-log``)."""
        self.admin.post("/_emulator/reset-log").raise_for_status()

    def request_counts(self) -> list[dict[str, Any]]:
        """``[{method, route, status, count}]`` since the last reset."""
        response = self.admin.get("/_emulator/requests")
        response.raise_for_status()
        return list(response.json()["counts"])

    def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        """Change latency, rate limit, faults at runtime."""
        response = self.admin.patch("/_emulator/knobs", json=knobs)
        response.raise_for_status()
        return dict(response.json())

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the emulator process has used so far."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)


def _wait_ready(admin: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkerError(f"emulator exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if admin.get("/_emulator/knobs", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise WorkerError(f"emulator did not answer within {_START_TIMEOUT_S:.0f} s: {_tail(log)}")


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(_STOP_TIMEOUT_S)


@contextlib.contextmanager
def start_emulator(
    *,
    latency_ms: float,
    rate_limit: float | None = None,
    state: Path | None = None,
) -> Iterator[EmulatorProcess]:
    """Run ``python -m kizen_sync.emulator`` on a free loopback port until the block exits.

    Args:
        latency_ms: the server's fixed latency per request.
        rate_limit: requests per second before it answers 429 (``None``: no limit).
        state: SQLite state file holding pre-seeded records (see :mod:`bench.fixtures`).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "kizen_sync.emulator", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--latency-ms", str(latency_ms)]
    if rate_limit is not None:
        cmd += ["--rate-limit", str(rate_limit)]
    if state is not None:
        cmd += ["--state", str(state)]
    with tempfile.NamedTemporaryFile(prefix="kizen-emulator-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    admin = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)
    try:
        _wait_ready(admin, process, log)
        yield EmulatorProcess(base_url=base_url, process=process, admin=admin)
    finally:
        admin.close()
        _stop(process)
        log.unlink(missing_ok=True)


def run_worker(
    task: str, params: dict[str, Any], *, timeout_s: float, isolated: bool = True
) -> dict[str, Any]:
    """Run one measurement in a fresh ``python -m bench.worker`` process; return its JSON.

    ``isolated=False`` runs the task in this process instead (no start-up cost, figures not
    its own), with the same JSON round trip.

    Raises:
        WorkerError: non-zero exit, no JSON on the last line, or ``timeout_s`` exceeded
            (the worker is killed).
    """
    if not isolated:
        from bench.worker import resolve

        return dict(json.loads(json.dumps(resolve(task)(params), default=str)))
    env = dict(os.environ)
    env.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # keep every byte on loopback
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", task],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        text=True,
    )
    try:
        out, err = process.communicate(json.dumps(params), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=_STOP_TIMEOUT_S)
        raise WorkerError(f"{task} timed out after {timeout_s:.0f} s: {err[-2000:]}") from None
    finally:
        _stop(process)
    if process.returncode != 0:
        raise WorkerError(f"{task} failed ({process.returncode}): {err[-3000:]}")
    lines = [line for line in out.strip().splitlines() if line.strip()]
    if not lines:
        raise WorkerError(f"{task} printed no result: {err[-2000:]}")
    return dict(json.loads(lines[-1]))
