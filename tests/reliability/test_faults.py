"""Seeded fault runs over real HTTP: 5xx, 429 storms, slow answers, dropped connections.

Each run syncs ~200 contacts and then a round of mixed changes (creates, updates, tag
add/remove, archives) with the fault switched on; failures left by a run are picked up by the
next one, as the schedule would. Then, faults off, Kizen must equal the warehouse: no lost
update, no duplicate, every deleted row archived, one terminal audit outcome per record per
run. Each test also checks that its fault actually fired, so none can pass by accident.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest

from kizen_sync.config import parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.models import AttemptRecord, Outcome, RunCounts, RunReport
from kizen_sync.warehouse import StateStore, Warehouse
from tests.support.faults import SCENARIOS, FaultResult, fault_run
from tests.support.journal import serve
from tests.support.people import SYNC, email_of, initial_rows, sync_spec
from tests.support.verdict import Verdict, audit_problems, compare

RECORDS = 200
#: scenario -> (seed, the fault kinds that must have fired)
CASES = {
    "5xx": (11, {"error"}),
    "429-storm": (12, {"throttled"}),
    "slow": (13, {"slow"}),
    "drops": (14, {"drop_before", "drop_after"}),
    "5xx-next-run": (15, {"error"}),
}


def _explain(result: FaultResult) -> str:
    return (
        f"{result.scenario} seed {result.seed}: "
        + " | ".join(v.summary() for v in result.verdicts)
        + f" | faults {dict(result.faults)}"
    )


@pytest.mark.parametrize("name", list(CASES))
def test_fault_run_converges_without_loss_or_duplicates(name: str, tmp_path: Path) -> None:
    seed, kinds = CASES[name]
    result = fault_run(
        SCENARIOS[name],
        seed=seed,
        records=RECORDS,
        rounds=2,
        warehouse_url=f"sqlite:///{tmp_path / 'wh.db'}",
    )
    assert result.ok, _explain(result)
    assert (result.lost, result.duplicated, result.audit_problems) == (0, 0, 0)
    assert len(result.verdicts) == 2
    for kind in kinds:
        assert result.faults[kind] > 0, f"{kind} never fired: {dict(result.faults)}"
    assert result.retry_rows > 0  # the audit shows the retried attempts
    if name == "5xx-next-run":
        assert result.next_run_retries > 0  # in-run retries were not enough on purpose
    if name == "429-storm":
        # Retry-After (1 s) honoured: every retry after a 429 waited at least that long (audit
        # timestamps). Retrying on the 20-500 ms backoff instead would wait less.
        assert result.waits_after_429, "no retry after a 429 was audited"
        assert result.retry_after_honoured, min(result.waits_after_429)


@pytest.mark.postgres
def test_mixed_faults_on_postgresql(pg_url: str, pg_schema: str) -> None:
    result = fault_run(
        SCENARIOS["mixed"],
        seed=16,
        records=RECORDS,
        rounds=2,
        warehouse_url=pg_url,
        state_schema=pg_schema,
    )
    assert result.ok, _explain(result)
    assert sum(result.faults.values()) > 0


# --- the checker itself must catch what it is meant to catch ----------------------------------


def test_checker_catches_lost_update_missing_duplicate_and_live_archive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = Emulator.demo()
    rows = initial_rows(random.Random(1), 4)
    for row in list(rows.values())[:3]:
        emu.create_record("client_client", {"email": row[1], "first_name": row[2]})
    gone = emu.create_record("client_client", {"email": "gone@reliability.example"})
    sync = parse_config({"warehouse": {"url": "sqlite://"}, "syncs": [sync_spec()]}).syncs[0]
    # Drop tags/status from the comparison by giving every row the values Kizen holds.
    rows = {i: (r[0], r[1], r[2], None, None) for i, r in rows.items()}  # type: ignore[misc]
    sync = sync.model_copy(update={"fields": sync.fields[:2]})
    clean = compare(emu, sync, {i: rows[i] for i in (1, 2, 3)}, set())
    assert clean.ok, clean.summary()

    rows[2] = (2, email_of(2), "Different", None, None)  # type: ignore[assignment]
    verdict = compare(emu, sync, rows, {"gone@reliability.example"})
    assert verdict.lost == [email_of(2)]
    assert verdict.missing == [email_of(4)]
    assert verdict.not_archived == ["gone@reliability.example"]
    assert gone

    doubled = emu.records("client_client", include_archived=True)
    monkeypatch.setattr(emu, "records", lambda *a, **k: doubled + doubled[:1])
    assert compare(emu, sync, {1: rows[1]}, set()).duplicated == [email_of(1)]


def test_audit_check_catches_two_terminal_rows_and_a_missing_one(tmp_path: Path, result) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    try:
        store = StateStore(warehouse)
        now = result("1").attempts[0].started_at
        twice = result(
            "1",
            attempts=(
                AttemptRecord(1, Outcome.SUCCESS, now, now, http_status=200),
                AttemptRecord(2, Outcome.SUCCESS, now, now, http_status=200),
            ),
        )
        store.record_results("run-a", SYNC, None, [twice, result("2")])
        assert audit_problems(store, SYNC, {"run-a"}) == ["run run-a key 1: 2 terminal rows"]

        # A completed run that planned two records but audited one.
        report = RunReport(
            run_id="run-b",
            sync=SYNC,
            partition_key=None,
            status="success",
            counts=RunCounts(updated=2),
            started_at=now,
            finished_at=now,
            planned=2,
        )
        store.finish_run(report)
        store.record_results("run-b", SYNC, None, [result("3")])
        assert audit_problems(store, SYNC, {"run-b"}) == [
            "run run-a key 1: 2 terminal rows",
            "run run-b: 1 audited records, planned 2",
        ]
        # The same run, killed (not completed): a missing outcome is expected there.
        assert audit_problems(store, SYNC, set()) == ["run run-a key 1: 2 terminal rows"]
        assert not Verdict(audit=["x"]).ok
    finally:
        warehouse.dispose()


# --- the slow-response knob added to the emulator for these runs ------------------------------


def test_slow_knob_applies_the_write_but_answers_after_the_client_gave_up() -> None:
    emu = Emulator.demo()
    key, user, business = emu.credentials
    headers = {"X-API-KEY": key, "X-USER-ID": user, "X-BUSINESS-ID": business}
    # The answer comes 1 s late, ten times the client's timeout: the client gives up first
    # however busy the machine (its timer and the server's run on different threads).
    emu.set_knobs(slow_rate=1.0, slow_ms=1000, seed=1)
    with serve(emu) as (base_url, journal):
        with (
            httpx.Client(base_url=base_url, headers=headers, timeout=0.1) as http,
            pytest.raises(httpx.ReadTimeout),
        ):
            http.post(
                "/api/records/client_client/upsert",
                json={"lookup_value": "slow@example.com", "fields": []},
            )
        emails = [
            f["value"]
            for r in emu.records("client_client")
            for f in r["fields"].values()
            if f["name"] == "email"
        ]
        assert "slow@example.com" in emails  # applied although unconfirmed
        assert emu.request_log.faults() == {"slow": 1}
        deadline = time.monotonic() + 120  # a hang guard: the answer comes 1 s late
        while not len(journal) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert journal.entries()[0].identifier == "slow@example.com"
        assert journal.entries()[0].applied
    emu.set_knobs(slow_rate=0.0)
    assert emu.request_log.as_json()["faults"] == {"slow": 1}
    emu.request_log.reset()
    assert emu.request_log.faults() == {}


def test_slow_knob_validation_and_no_shift_of_existing_seeds() -> None:
    emu = Emulator.demo()
    with pytest.raises(ValueError, match="slow_rate"):
        emu.set_knobs(slow_rate=1.5)
    with pytest.raises(ValueError, match="slow_ms"):
        emu.set_knobs(slow_ms=-1)
    # slow_rate 0 draws nothing: the 5xx sequence of a seed is what it was before the knob.
    a, b = Emulator.demo().faults, Emulator.demo().faults
    a.reseed(5)
    b.reseed(5)
    seq_a = [a.error_status(0.5) for _ in range(50)]
    seq_b = []
    for _ in range(50):
        seq_b.append(b.error_status(0.5))
        assert b.slow(0.0) is False
    assert seq_a == seq_b
