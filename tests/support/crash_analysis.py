"""What each kill of the ``kill -9`` loop cost: kill moments, per-crash records, the verdict.

Re-sends after a crash are derived from the emulator's write journal (the records a killed run
got applied) and from the audit table (those it had confirmed): the design says re-sent =
applied - confirmed exactly, bounded by the in-flight window.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kizen_sync.emulator import Emulator
from kizen_sync.warehouse import StateStore, Warehouse
from tests.support.journal import Journal, JournalEntry
from tests.support.people import CONTACTS, SYNC, Mix, email_of
from tests.support.verdict import Verdict

__all__ = [
    "FLUSH_EVERY",
    "CrashLoopResult",
    "CrashRecord",
    "KillPoint",
    "Segment",
    "analyse",
    "one_success_per_change",
]

#: Results the executor hands to the store per batch (``Executor.flush_every``).
FLUSH_EVERY = 200

#: One run of the loop: journal positions [begin, end), wall-clock start and end, killed.
Segment = tuple[int, int, datetime, datetime, bool]


@dataclass(frozen=True)
class KillPoint:
    """When to kill one run: after ``value`` writes reached Kizen, or ``value`` seconds."""

    kind: str  # "writes" | "seconds"
    value: float

    def __str__(self) -> str:
        return f"{self.value:g} writes" if self.kind == "writes" else f"{self.value:.2f} s"


@dataclass
class CrashRecord:
    """One kill and what the run after it had to send again."""

    index: int
    point: KillPoint
    writes_before_kill: int
    applied: int
    confirmed: int
    resent: int
    confirmed_resent: int
    unconfirmed_not_resent: int
    killed: bool
    exit_code: int | None = None


@dataclass
class CrashLoopResult:
    """Figures of one ``kill -9`` loop over a single change run."""

    seed: int
    base_rows: int
    mix: Mix
    max_in_flight: int
    latency_ms: float
    crashes: list[CrashRecord] = field(default_factory=list)
    final_exit: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0
    writes_total: int = 0

    @property
    def bound(self) -> int:
        """Re-sends one crash may cost: requests in flight plus the results not yet committed,
        i.e. the batch being written and the one filling up (each up to ``FLUSH_EVERY``).
        """
        return self.max_in_flight + 2 * FLUSH_EVERY

    @property
    def resent(self) -> list[int]:
        """Records re-sent per crash."""
        return [c.resent for c in self.crashes if c.killed]

    def resent_stats(self) -> tuple[int, float, int]:
        """(min, median, max) of :attr:`resent` (zeros when there were no crashes)."""
        values = self.resent
        if not values:
            return (0, 0.0, 0)
        return (min(values), float(statistics.median(values)), max(values))

    @property
    def ok(self) -> bool:
        """Converged, nothing confirmed re-sent, nothing applied-unconfirmed left behind."""
        return (
            self.final_exit == 0
            and self.verdict.ok
            and all(c.confirmed_resent == 0 and c.unconfirmed_not_resent == 0 for c in self.crashes)
            and all(r <= self.bound for r in self.resent)
        )


def analyse(
    journal: Journal,
    emu: Emulator,
    url: str,
    segments: list[Segment],
    points: list[KillPoint],
) -> list[CrashRecord]:
    """Per killed segment: applied writes, confirmed records, and what later runs re-sent."""
    email_by_id = {}
    for record in emu.records(CONTACTS, include_archived=True):
        for f in record["fields"].values():
            if f["name"] == "email" and f.get("value"):
                email_by_id[record["id"].lower()] = str(f["value"]).lower()

    def records_of(entries: list[JournalEntry], applied_only: bool) -> set[str]:
        out = set()
        for e in entries:
            if applied_only and not e.applied:
                continue
            email = (e.identifier or "").lower() or email_by_id.get(e.record_id or "", "")
            if email:
                out.add(email)
        return out

    with Warehouse(url) as warehouse:
        store = StateStore(warehouse)
        summaries = store.run_summaries(SYNC, limit=None)
        audit = store.audit_rows(sync=SYNC)
    crashes = []
    for index, (begin, end, wall_begin, wall_end, killed) in enumerate(segments[:-1]):
        runs = {s["run_id"] for s in summaries if wall_begin <= _aware(s["started_at"]) <= wall_end}
        confirmed = {
            email_of(int(r["source_key"]))
            for r in audit
            if r["run_id"] in runs and r["outcome"] == "success"
        }
        applied = records_of(journal.entries(begin, end), applied_only=True)
        later = records_of(journal.entries(end), applied_only=False)
        unconfirmed = applied - confirmed
        crashes.append(
            CrashRecord(
                index=index,
                point=points[index],
                writes_before_kill=end - begin,
                applied=len(applied),
                confirmed=len(confirmed),
                resent=len(applied & later),
                confirmed_resent=len(confirmed & later),
                unconfirmed_not_resent=len(unconfirmed - later),
                killed=killed,
            )
        )
    return crashes


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def one_success_per_change(store: StateStore, segments: list[Segment]) -> list[str]:
    """Across the whole killed-and-resumed change run, each record succeeded exactly once."""
    first = segments[0][2]
    successes: Counter[str] = Counter(
        r["source_key"]
        for r in store.audit_rows(sync=SYNC)
        if r["outcome"] == "success" and _aware(r["finished_at"]) >= first
    )
    return [f"key {k}: {n} successes" for k, n in successes.items() if n > 1]
