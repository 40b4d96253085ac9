"""Peak and current memory of this process, from ``/proc/self/status`` (Linux)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["rss_mib", "vm_hwm_mib"]


def _status_kib(key: str) -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def vm_hwm_mib() -> float | None:
    """Peak resident set size since the process started (VmHWM), MiB."""
    kib = _status_kib("VmHWM")
    return None if kib is None else round(kib / 1024, 1)


def rss_mib() -> float | None:
    """Current resident set size (VmRSS), MiB."""
    kib = _status_kib("VmRSS")
    return None if kib is None else round(kib / 1024, 1)
