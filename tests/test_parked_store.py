"""The parked-failures table, written with the audit rows of the attempt (both dialects)."""

from __future__ import annotations

from typing import Any

from kizen_sync.errors import KizenValidationError, MappingError, ServerError
from kizen_sync.models import AttemptRecord, Operation, Outcome
from kizen_sync.warehouse import StateStore
from kizen_sync.warehouse.failures import is_parkable, parking_changes
from tests.conftest import _now, make_result


def failed(key: str, error_class: str, fingerprint: str = "fp1", status: int = 400) -> Any:
    attempt = AttemptRecord(
        1, Outcome.FAILED, _now(), _now(), http_status=status, error_class=error_class
    )
    return make_result(key, outcome=Outcome.FAILED, fingerprint=fingerprint, attempts=(attempt,))


def test_only_failures_that_resending_cannot_fix_are_parked() -> None:
    assert is_parkable("MappingError")
    assert is_parkable("KizenValidationError")
    assert is_parkable("NotFoundError")
    assert is_parkable("ConflictError")
    assert not is_parkable("ServerError")
    assert not is_parkable("RateLimitedError")
    assert not is_parkable("TransportError")
    assert not is_parkable("NotAppliedError")  # accepted, not applied: the next run re-sends
    assert not is_parkable("KeyError")  # unexpected: may be transient
    assert is_parkable("SkippableError")  # e.g. no identifier to create the record with
    assert not is_parkable(None)
    rejected = make_result(
        "m",
        op=Operation.FAIL,
        outcome=Outcome.FAILED,
        attempts=(),
        error=MappingError(column="c", field="f", problem="bad"),
    )
    park, unpark = parking_changes(
        [
            failed("a", KizenValidationError.__name__),
            failed("b", ServerError.__name__, status=503),
            make_result("c"),
            rejected,
        ]
    )
    assert park == {"a": ("fp1", "KizenValidationError"), "m": ("fp", "MappingError")}
    assert unpark == {"b", "c"}


def test_parked_since_stays_while_the_row_fails_unchanged(db: Any) -> None:
    store = StateStore(db.warehouse)
    store.record_results("r1", "s", None, [failed("k", "KizenValidationError")])
    first = store.failures.summary("s")
    assert first.count == 1
    store.record_results("r2", "s", None, [failed("k", "KizenValidationError")])
    assert store.failures.summary("s") == first  # same fingerprint: still parked since r1
    store.record_results("r3", "s", None, [failed("k", "ConflictError", fingerprint="fp2")])
    moved = store.failures.summary("s")
    assert moved.oldest is not None
    assert first.oldest is not None
    assert moved.oldest > first.oldest
    assert store.failures.fingerprints("s") == {"k": "fp2"}
    listing = store.failures.listing("s")
    assert (listing.total, listing.parked, listing.retrying) == (1, 1, 0)
    # A retryable failure is not parked any more; a success closes everything.
    store.record_results("r4", "s", None, [failed("k", "ServerError", status=502)])
    listing = store.failures.listing("s")
    assert (listing.total, listing.parked, listing.retrying) == (1, 0, 1)
    store.record_results("r5", "s", None, [make_result("k")])
    assert store.failures.listing("s").total == 0
    assert not store.failures.has_parked("s")
