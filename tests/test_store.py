from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select

from kizen_sync.errors import MappingError, StateStoreError
from kizen_sync.mapping import hash_values
from kizen_sync.models import (
    AttemptRecord,
    FieldChange,
    Operation,
    Outcome,
    PlannedOp,
    RecordResult,
    RunCounts,
    RunReport,
)
from kizen_sync.warehouse import StateStore, Warehouse, decode_values, encode_values
from kizen_sync.warehouse import audit as store_module
from kizen_sync.warehouse.sqlfiles import migrations
from tests.support.overlap import flush_deadlocks

Make = Callable[..., RecordResult]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def attempt(n: int, outcome: Outcome, status: int | None, **kw: Any) -> AttemptRecord:
    return AttemptRecord(n, outcome, T0, T0, http_status=status, **kw)


def test_ensure_schema_is_idempotent_and_safe_when_racing(db: Any) -> None:
    stores = [StateStore(db.warehouse) for _ in range(4)]
    errors: list[BaseException] = []

    def create(store: StateStore) -> None:
        try:
            store.ensure_schema()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fresh = StateStore(db.warehouse)
    fresh.ensure_schema()
    with db.warehouse.engine.connect() as conn:
        versions = conn.execute(select(fresh.tables.version.c.version)).scalars().all()
    shipped = [f.version for f in migrations(db.dialect)]
    assert sorted(versions) == shipped  # each file applied once
    assert shipped[:3] == [1, 2, 3]


def test_values_round_trip_exactly() -> None:
    values = {
        "score": Decimal("1.50"),
        "renewal": date(2024, 1, 2),
        "seen": T0,
        "tags": ("a", "b"),
        "ids": frozenset({"x", "y"}),
        "plain": [1, "two", None],
    }
    assert decode_values(encode_values(values)) == values
    assert decode_values(None) == {}


def test_audit_row_per_attempt_and_state_only_on_success(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)
    ok = result(
        "1",
        values={"score": Decimal("2.5")},
        fingerprint="f1",
        attempts=(
            attempt(1, Outcome.RETRY, 503, error_class="ServerError"),
            attempt(2, Outcome.SUCCESS, 200),
        ),
    )
    failed = result(
        "2",
        outcome=Outcome.FAILED,
        attempts=(
            attempt(1, Outcome.RETRY, 429, error_class="RateLimitedError"),
            attempt(2, Outcome.RETRY, 503, error_class="ServerError", error_message="busy"),
        ),
    )
    unmappable = result(
        "3",
        op=Operation.FAIL,
        outcome=Outcome.FAILED,
        attempts=(),
        error=MappingError(column="score", field="health_score", problem="'abc' is not a decimal"),
    )
    assert store.record_results("run-1", "s", "2024-05-01", [ok, failed, unmappable]) == 5
    rows = store.audit_rows(run_id="run-1")
    assert [(r["source_key"], r["attempt"], r["outcome"], r["http_status"]) for r in rows] == [
        ("1", 1, "retry", 503),
        ("1", 2, "success", 200),
        ("2", 1, "retry", 429),
        ("2", 2, "failed", 503),  # the terminal row carries the final outcome
        ("3", 0, "failed", None),
    ]
    assert rows[4]["error_class"] == "MappingError"
    assert json.loads(rows[4]["field_errors"]) == {"health_score": ["'abc' is not a decimal"]}
    assert rows[0]["partition_key"] == "2024-05-01"
    assert rows[0]["started_at"] == T0
    state = store.load_state("s", ["1", "2", "3"])
    assert list(state) == ["1"]
    assert state["1"].fingerprint == "f1"
    assert state["1"].values == {"score": Decimal("2.5")}
    assert state["1"].kizen_id == "rec-1"


def test_archive_keeps_the_row_flagged_and_a_later_update_restores_it(
    db: Any, result: Make
) -> None:
    store = StateStore(db.warehouse)
    store.record_results("r1", "s", None, [result("1", values={"name": "A"}, fingerprint="f1")])
    store.record_results(
        "r2", "s", None, [result("1", op=Operation.ARCHIVE, fingerprint=None, kizen_id=None)]
    )
    archived = store.load_state("s", ["1"])["1"]
    assert (archived.archived, archived.fingerprint, archived.kizen_id) == (True, None, "rec-1")
    assert archived.values == {"name": "A"}  # kept for the restore
    store.record_results("r3", "s", None, [result("1", values={"name": "B"}, fingerprint="f2")])
    restored = store.load_state("s", ["1"])["1"]
    assert (restored.archived, restored.fingerprint, restored.values) == (
        False,
        "f2",
        {"name": "B"},
    )


def test_open_failures_close_on_success_and_count_failed_runs(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)

    def fail(run: str, key: str, message: str) -> None:
        store.record_results(
            run,
            "s",
            None,
            [
                result(
                    key,
                    outcome=Outcome.FAILED,
                    attempts=(
                        attempt(
                            1,
                            Outcome.FAILED,
                            400,
                            error_class="KizenValidationError",
                            error_message=message,
                            field_errors={"email": ["invalid"]},
                        ),
                    ),
                )
            ],
        )

    fail("r1", "a", "first")
    fail("r1", "b", "first")
    fail("r2", "a", "second")
    store.record_results("r2", "other", None, [result("a")])
    failures = {f["source_key"]: f for f in store.open_failures("s")}
    assert set(failures) == {"a", "b"}
    assert failures["a"]["failed_runs"] == 2
    assert failures["a"]["error_message"] == "second"
    assert failures["a"]["age"] >= 0
    assert failures["a"]["first_failed_at"] <= failures["a"]["last_failed_at"]
    assert json.loads(failures["a"]["field_errors"]) == {"email": ["invalid"]}
    assert store.failed_keys("s") == {"a", "b"}
    assert store.open_failures(limit=1)[0]["source_key"] in {"a", "b"}

    store.record_results("r3", "s", None, [result("a")])  # success closes it
    assert store.failed_keys("s") == {"b"}
    fail("r4", "a", "again")
    assert store.open_failures("s")[0]["failed_runs"] == 1  # counted since the last success


def test_sensitive_values_only_reach_the_audit_as_a_keyed_hash(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)
    secret = "jane.secret@example.com"
    key = b"k" * 32
    values = {"email": secret, "first_name": "Jane"}
    failed = result(
        "1",
        outcome=Outcome.FAILED,
        values=values,
        changes=(FieldChange("email", after=secret), FieldChange("first_name", after="Jane")),
        attempts=(
            attempt(
                1,
                Outcome.FAILED,
                400,
                error_class="KizenValidationError",
                error_message=f"'{secret}' is not valid",
                field_errors={"email": [f"{secret} rejected"]},
            ),
        ),
    )
    unmappable = result(
        "2",
        op=Operation.FAIL,
        outcome=Outcome.FAILED,
        attempts=(),
        error=MappingError(column="mail", field="email", problem=f"{secret!r} has no domain"),
    )
    store.record_results(
        "r1", "s", None, [failed, unmappable], sensitive_fields={"email"}, hash_key=key
    )
    rows = store.audit_rows("r1")
    assert secret not in json.dumps(rows, default=str)
    # The one HMAC implementation (mapping.hash_values), not a second one in the store.
    assert rows[0]["values_hash"] == hash_values(values, key)
    assert (
        rows[0]["values_hash"]
        == hmac.new(
            key, json.dumps(values, sort_keys=True, separators=(",", ":")).encode(), hashlib.sha256
        ).hexdigest()
    )
    assert json.loads(rows[0]["changed_fields"]) == {"email": "[redacted]", "first_name": "Jane"}
    assert "is not valid" in rows[0]["error_message"]
    store.record_results("r2", "s", None, [failed])  # no key: no hash at all, never an unkeyed one
    assert store.audit_rows("r2")[0]["values_hash"] is None


def test_runs_and_summaries(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)
    store.start_run("r1", "s", "p1", T0)
    assert store.run_summaries("s")[0]["status"] == "running"
    store.record_results("r1", "s", "p1", [result("1"), result("2", outcome=Outcome.FAILED)])
    report = RunReport(
        run_id="r1",
        sync="s",
        partition_key="p1",
        status="success",
        counts=RunCounts(updated=1, failed=1),
        started_at=T0,
        finished_at=T0,
        planned=2,
        requests=2,
        message="done",
    )
    store.finish_run(report)
    (summary,) = store.run_summaries("s")
    assert summary["status"] == "success"
    assert (summary["updated"], summary["failed"], summary["planned"]) == (1, 1, 2)
    assert (summary["audit_records"], summary["audit_succeeded"], summary["audit_failed"]) == (
        2,
        1,
        1,
    )
    assert summary["finished_at"] == T0


def test_ten_thousand_results_flush_in_one_transaction_quickly(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)
    store.ensure_schema()
    results = [result(str(i), values={"n": i}, fingerprint=f"f{i}") for i in range(10_000)]
    engine = db.warehouse.engine
    statements: list[str] = []
    commits: list[object] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def on_commit(conn: Any) -> None:
        commits.append(conn)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        assert store.record_results("big", "s", None, results) == 10_000
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
    assert len(store.load_state("s", [str(i) for i in range(10_000)])) == 10_000
    # "Quickly", judged without a clock: 20,000 rows (audit + state) go out in batched
    # statements, not one per row, and commit once.
    assert len(statements) <= 50, f"{len(statements)} statements for 10k results"
    assert len(commits) == 1


def test_sqlite_has_no_state_schema(sqlite_url: str) -> None:
    with pytest.raises(StateStoreError, match="leave state_schema unset"):
        Warehouse(sqlite_url, state_schema="other")


def test_bad_prefix_is_rejected(sqlite_url: str) -> None:
    with pytest.raises(StateStoreError, match="table prefix"):
        Warehouse(sqlite_url, table_prefix="x; drop table y")


# --- forget, sensitive values, one HMAC --------------------------------------------------------


def _forget(key: str) -> RecordResult:
    """The planner's "forget the state row" op, applied (nothing is sent for it)."""
    op = PlannedOp(Operation.NOOP, key, kizen_id="rec-1", new_values={}, fingerprint=None)
    return RecordResult(op=op, outcome=Outcome.SUCCESS, kizen_id="rec-1")


def test_a_forget_op_deletes_the_state_row_and_is_audited_as_forget(db: Any, result: Make) -> None:
    store = StateStore(db.warehouse)
    store.record_results(
        "r1", "s", None, [result("1", values={"n": 1}), result("2", values={"n": 2})]
    )
    store.record_results("r2", "s", None, [_forget("1")])
    assert list(store.load_state("s", ["1", "2"])) == ["2"]
    (row,) = store.audit_rows("r2")
    assert (row["operation"], row["outcome"], row["attempt"]) == ("forget", "success", 0)
    # Within one batch the last result of a key wins: forget, then a new sync of the row.
    store.record_results("r3", "s", None, [_forget("2"), result("2", values={"n": 3})])
    assert store.load_state("s", ["2"])["2"].values == {"n": 3}
    store.record_results("r4", "s", None, [result("2", values={"n": 4}), _forget("2")])
    assert store.load_state("s", ["2"]) == {}


def test_the_store_hashes_with_the_one_mapping_implementation(
    db: Any, result: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[dict[str, Any], bytes]] = []

    def spy(values: Any, key: bytes) -> str:
        calls.append((dict(values), key))
        return hash_values(values, key)

    monkeypatch.setattr(store_module, "hash_values", spy)
    assert not hasattr(store_module, "values_hash")
    StateStore(db.warehouse).record_results(
        "r1", "s", None, [result("1", values={"email": "a@b.c"})], hash_key=b"k"
    )
    assert calls == [({"email": "a@b.c"}, b"k")]


def test_every_mapping_problem_gets_its_own_field_message_and_sensitive_ones_are_withheld(
    db: Any, result: Make
) -> None:
    # A MappingError made elsewhere than the planner still quotes a sensitive value: the
    # audit withholds it on its own, problem by problem.
    secret = "Top-Secret-Value"
    problems = (
        MappingError(column="ssn", field="ssn", problem=f"{secret!r} is not valid"),
        MappingError(column="score", field="health_score", problem="'abc' is not a decimal"),
    )
    error = MappingError(
        column="ssn", field="ssn", problem=f"{secret!r}; and 1 more", problems=problems
    )
    failed = result("1", op=Operation.FAIL, outcome=Outcome.FAILED, attempts=(), error=error)
    store = StateStore(db.warehouse)
    store.record_results("r1", "s", None, [failed], sensitive_fields={"ssn"})
    (row,) = store.audit_rows("r1")
    assert secret not in json.dumps(row, default=str)
    assert json.loads(row["field_errors"]) == {
        "ssn": ["value rejected (details withheld: sensitive field)"],
        "health_score": ["'abc' is not a decimal"],
    }
    assert "field 'health_score': 'abc' is not a decimal" in row["error_message"]


def test_kizen_messages_that_echo_a_sensitive_value_in_another_spelling_are_scrubbed(
    db: Any, result: Make
) -> None:
    # Kizen lower-cases e-mail addresses and echoes wire values; entries may address the
    # field by id. None of it may reach the audit.
    field_id = "0b4e6a52-1111-4222-8333-444455556666"
    secret = "Jane.Secret@Example.com"
    failed = result(
        "1",
        outcome=Outcome.FAILED,
        values={"email": secret, "score": "12.5"},
        entries=({"id": field_id, "value": secret}, {"name": "score", "value": 12.5}),
        changes=(FieldChange("email", after=secret), FieldChange("score", after="12.5")),
        attempts=(
            attempt(
                1,
                Outcome.FAILED,
                400,
                error_class="KizenValidationError",
                error_message=f"'{secret.lower()}' is taken",
                field_errors={field_id: [f"{secret.lower()} is taken"], "score": ["12.5 > 10"]},
            ),
        ),
    )
    store = StateStore(db.warehouse)
    store.record_results("r1", "s", None, [failed], sensitive_fields={"email", field_id, "score"})
    dumped = json.dumps(store.audit_rows("r1"), default=str)
    assert secret.lower() not in dumped.lower()
    assert "12.5" not in dumped
    (row,) = store.audit_rows("r1")
    assert json.loads(row["changed_fields"]) == {"email": "[redacted]", "score": "[redacted]"}


@pytest.mark.postgres
def test_two_flushes_of_the_same_keys_in_opposite_orders_never_deadlock(
    pg_url: str, pg_schema: str
) -> None:
    # Two runs' flushes used to lock the same state rows in their own order: PostgreSQL
    # then killed one of them with "deadlock detected". Rows go in key order now.
    warehouse = Warehouse(pg_url, state_schema=pg_schema)
    try:
        assert flush_deadlocks(warehouse, rounds=5, keys=2000) == 0
    finally:
        warehouse.dispose()
