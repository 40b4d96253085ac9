"""Seeded fault runs: 5xx, 429 storms, slow answers, dropped connections, over real HTTP.

:func:`fault_run` syncs N contacts, then rounds of mixed changes, with one
:class:`FaultScenario` switched on in the emulator; a run that leaves failures is followed by
the next one, as the schedule would. Then, faults off, Kizen is compared with the warehouse
(:mod:`tests.support.verdict`).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from kizen_sync.client import ClientSettings
from kizen_sync.config import parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import KizenSyncError
from kizen_sync.warehouse import StateStore, Warehouse
from tests.support.journal import serve
from tests.support.people import (
    SYNC,
    TABLE,
    Row,
    initial_rows,
    mutate,
    project_dict,
    sync_spec,
    write_rows,
)
from tests.support.verdict import Verdict, audit_problems, compare

__all__ = [
    "FAULT_SETTINGS",
    "SCENARIOS",
    "FaultResult",
    "FaultScenario",
    "fault_run",
    "waits_after_429",
]


@dataclass(frozen=True)
class FaultScenario:
    """One kind of fault: emulator knobs plus client settings that make it bite."""

    name: str
    knobs: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


SCENARIOS: dict[str, FaultScenario] = {
    s.name: s
    for s in (
        FaultScenario("5xx", {"error_rate": 0.10}),
        FaultScenario("429-storm", {"rate_limit_rps": 40}),
        FaultScenario(
            "slow", {"slow_rate": 0.05, "slow_ms": 600}, {"timeout_s": 0.2, "connect_timeout_s": 1}
        ),
        FaultScenario("drops", {"drop_rate": 0.05}),
        # Few attempts against many errors: records fail in-run and the next run must
        # pick them up (the schedule's automatic retry), without duplicating anything.
        FaultScenario("5xx-next-run", {"error_rate": 0.20}, {"max_attempts": 2}),
        FaultScenario(
            "mixed",
            {"error_rate": 0.05, "drop_rate": 0.02, "slow_rate": 0.02, "slow_ms": 600},
            {"timeout_s": 0.2, "connect_timeout_s": 1},
        ),
    )
}

#: The emulator's ``Retry-After`` on a 429: the whole seconds to its window's end, always 1.
RETRY_AFTER_S = 1.0
#: Audit timestamps come from the wall clock, sleeps run on the monotonic one.
CLOCK_SLACK_S = 0.01

#: Client settings for fault runs: short backoffs keep runs quick; Retry-After (1 s) honoured.
FAULT_SETTINGS: dict[str, Any] = {
    "backoff_base_s": 0.02,
    "backoff_max_s": 0.5,
    "max_retry_after_s": 2.0,
    "retry_budget_s": 30.0,
    "timeout_s": 2.0,
}


@dataclass
class FaultResult:
    """Figures of one seeded fault run (several rounds of changes, each verified)."""

    scenario: str
    seed: int
    warehouse: str
    records: int
    rounds: int
    changes: int = 0
    runs: int = 0
    next_run_retries: int = 0
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    retry_rows: int = 0
    waits_after_429: list[float] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        """Records whose Kizen values differ from the source after the last run of a round."""
        return sum(len(v.lost) + len(v.missing) + len(v.not_archived) for v in self.verdicts)

    @property
    def duplicated(self) -> int:
        """Identifiers held by more than one record (archived ones included)."""
        return sum(len(v.duplicated) for v in self.verdicts)

    @property
    def audit_problems(self) -> int:
        """Breaks of the one-terminal-outcome rule."""
        return sum(len(v.audit) for v in self.verdicts)

    @property
    def retry_after_honoured(self) -> bool:
        """Every retry after a 429 waited at least the emulator's ``Retry-After`` (1 s), as the
        audit's attempt timestamps show; a client retrying on its own 20-500 ms backoff waits
        less. A lower bound on a wait the client makes: no machine is too slow for it.
        """
        return all(wait >= RETRY_AFTER_S - CLOCK_SLACK_S for wait in self.waits_after_429)

    @property
    def ok(self) -> bool:
        """Every round converged with a consistent audit, and Retry-After was honoured."""
        return all(v.ok for v in self.verdicts) and self.retry_after_honoured


def fault_run(
    scenario: FaultScenario,
    *,
    seed: int,
    records: int,
    rounds: int = 2,
    warehouse_url: str,
    state_schema: str | None = None,
    max_next_runs: int = 10,
) -> FaultResult:
    """Sync ``records`` rows, then ``rounds - 1`` rounds of mixed changes, under ``scenario``.

    After each run that left failures, the next run is started automatically (at most
    ``max_next_runs`` times, faults still on): that is what the schedule would do. Then the
    faults are switched off and Kizen is compared with the warehouse.
    """
    rng = random.Random(seed)
    result = FaultResult(
        scenario.name, seed, warehouse_url.split(":", 1)[0].split("+")[0], records, rounds
    )
    started = time.monotonic()
    emu = Emulator.demo()
    warehouse = Warehouse(warehouse_url, state_schema=state_schema)
    source_table = f"{state_schema}.{TABLE}" if state_schema else TABLE
    try:
        with serve(emu) as (base_url, _journal):
            data = project_dict(warehouse_url, base_url, emu)
            data["syncs"] = [sync_spec(table=source_table)]
            project = parse_config(data)
            key, user, business = emu.credentials
            settings = ClientSettings(
                base_url=base_url,
                api_key=key,
                user_id=user,
                business_id=business,
                max_in_flight=8,
                **(FAULT_SETTINGS | scenario.settings),
            )
            runner = SyncRunner(project, client_settings=settings, warehouse=warehouse)
            store = runner.store
            rows = initial_rows(rng, records)
            deleted: set[str] = set()
            next_id = records + 1
            completed: set[str] = set()
            for round_no in range(rounds):
                if round_no:
                    rows, mix, gone = mutate(rows, rng, max(4, records // 2), next_id)
                    deleted |= gone
                    next_id += mix.creates
                    result.changes += mix.total
                else:
                    result.changes += len(rows)
                _write_source(warehouse, rows, source_table)
                emu.set_knobs(**scenario.knobs, seed=seed * 1000 + round_no)
                for attempt in range(1 + max_next_runs):
                    report = None
                    try:
                        report = runner.run(SYNC)
                    except KizenSyncError:
                        pass  # a fatal stop is retried by the next run like any failure
                    result.runs += 1
                    if report is not None:
                        result.requests += report.requests
                        completed.add(report.run_id)
                    if report is not None and not runner.open_failures(SYNC):
                        break
                    if attempt < max_next_runs:
                        result.next_run_retries += 1
                result.faults.update(emu.request_log.faults())
                emu.request_log.reset()
                emu.set_knobs(error_rate=0.0, drop_rate=0.0, slow_rate=0.0, rate_limit_rps=None)
                verdict = compare(emu, project.syncs[0], rows, deleted)
                verdict.audit = audit_problems(store, SYNC, completed)
                result.verdicts.append(verdict)
            result.retry_rows = sum(
                1 for r in store.audit_rows(sync=SYNC) if r["outcome"] == "retry"
            )
            result.waits_after_429 = waits_after_429(store)
    finally:
        warehouse.dispose()
        emu.close()
    result.seconds = time.monotonic() - started
    return result


def _write_source(warehouse: Warehouse, rows: Mapping[int, Row], table: str) -> None:
    write_rows(warehouse.engine, rows, table)


def waits_after_429(store: StateStore) -> list[float]:
    """Seconds from each audited 429 attempt's end to the same record's next attempt's start."""
    attempts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in store.audit_rows(sync=SYNC):
        attempts[(row["run_id"], row["source_key"])].append(row)
    return [
        (_aware(after["started_at"]) - _aware(before["finished_at"])).total_seconds()
        for rows in attempts.values()
        for before, after in pairwise(rows)
        if before["http_status"] == 429
    ]


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
