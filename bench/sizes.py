"""How big each part of the bench is: the full run, ``--quick`` and the ``--smoke`` test size.

Sizes live in one place so that the README, the JSON and the table always agree on what was
measured. The full sizes follow the issue: ~10 s per throughput setting (N = 10 x R, capped),
a 1,000,000-row diff with 1 % churn, a 20,000-row side-by-side at 5 ms latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "SMOKE", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """One bench profile.

    Attributes:
        name: ``full``, ``quick`` or ``smoke``.
        rates: server rate limits R to measure (``None`` = no limit).
        seconds_per_rate: intended length of one throughput setting; N = R x this.
        max_rows: cap on N per throughput setting (and N for the no-limit setting).
        latency_ms: emulator latency for throughput, request counts and the no-change run.
        request_rows: records per configuration in the requests-per-record part.
        diff_rows: source rows of the change-detection and no-change parts.
        churn: fraction of ``diff_rows`` changed (split 0.5 % updated, 0.3 % new, 0.2 % deleted
            at 1 %).
        peer_rows: rows of the side-by-side first sync.
        peer_latency_ms: emulator latency of the side-by-side part (bounds the naive script).
        peer_churn: fraction of ``peer_rows`` updated before the incremental run.
        client_only: also measure the client alone for each rate.
        isolated: run each measurement in a fresh worker process, so that its CPU time and
            peak memory are its own; ``False`` runs them in the bench's process (smoke size:
            the figures mean nothing there, only that every part runs end to end).
    """

    name: str
    rates: tuple[float | None, ...]
    seconds_per_rate: float
    max_rows: int
    latency_ms: float
    request_rows: int
    diff_rows: int
    churn: float
    peer_rows: int
    peer_latency_ms: float
    peer_churn: float
    client_only: bool = True
    isolated: bool = True

    def rows_for(self, rate: float | None) -> int:
        """N for one throughput setting: ~``seconds_per_rate`` of work, capped."""
        if rate is None:
            return self.max_rows
        return max(20, min(self.max_rows, round(rate * self.seconds_per_rate)))

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the results file."""
        return asdict(self)


FULL = Sizes(
    name="full",
    rates=(50.0, 200.0, 1000.0, None),
    seconds_per_rate=10.0,
    max_rows=10_000,
    latency_ms=20.0,
    request_rows=200,
    diff_rows=1_000_000,
    churn=0.01,
    peer_rows=20_000,
    peer_latency_ms=5.0,
    peer_churn=0.01,
)

QUICK = Sizes(
    name="quick",
    rates=(200.0,),
    seconds_per_rate=2.0,
    max_rows=400,
    latency_ms=20.0,
    request_rows=40,
    diff_rows=20_000,
    churn=0.01,
    peer_rows=500,
    peer_latency_ms=0.0,
    peer_churn=0.02,
    client_only=False,
)

#: What the test suite runs (``tests/bench``): every part end to end on tiny data, in seconds.
SMOKE = Sizes(
    name="smoke",
    rates=(200.0,),
    seconds_per_rate=0.25,
    max_rows=50,
    latency_ms=0.0,
    request_rows=20,
    diff_rows=500,
    churn=0.02,
    peer_rows=50,
    peer_latency_ms=0.0,
    peer_churn=0.04,
    client_only=False,
    isolated=False,
)
