"""The error tree: families, context attributes, and errors surviving a process boundary."""

from __future__ import annotations

import pickle

import pytest

from kizen_sync.errors import (
    AuthenticationError,
    ConfigError,
    ConfigProblem,
    ConflictError,
    FieldError,
    GuardError,
    KizenSyncError,
    KizenValidationError,
    MappingError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    SourceError,
    TransportError,
    describe,
)


@pytest.mark.parametrize(
    ("error", "family"),
    [
        (ConfigError([ConfigProblem("syncs[0].object", "missing")]), "fatal"),
        (SourceError("bad key", sync="s"), "fatal"),
        (GuardError("too many", sync="s", would_archive=9), "fatal"),
        (AuthenticationError("no", status=401), "fatal"),
        (PermissionDeniedError("no", status=403), "fatal"),
        (RateLimitedError("slow down", status=429, retry_after=2.0), "retryable"),
        (ServerError("boom", status=503), "retryable"),
        (TransportError("dropped"), "retryable"),
        (KizenValidationError("bad", status=400), "skippable"),
        (NotFoundError("gone", status=404), "skippable"),
        (ConflictError("taken", status=409), "skippable"),
        (MappingError(column="c", field="f", problem="p"), "skippable"),
    ],
)
def test_every_error_belongs_to_exactly_one_family(error: KizenSyncError, family: str) -> None:
    families = {"fatal": error.fatal, "retryable": error.retryable}
    families["skippable"] = not error.fatal and not error.retryable
    assert [name for name, yes in families.items() if yes] == [family]


def roundtrip(error: KizenSyncError) -> KizenSyncError:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    return clone


def test_api_errors_keep_status_and_per_field_messages_across_pickling() -> None:
    error = KizenValidationError(
        "invalid",
        status=400,
        method="PATCH",
        path="/api/records/client_client/123",
        field_errors=[FieldError(0, "email", {"value": ["Enter a valid email address."]})],
        non_field_errors=["record is locked"],
        sync="contacts",
        source_key="7",
    )
    clone = roundtrip(error)
    assert isinstance(clone, KizenValidationError)
    assert (clone.status, clone.method, clone.path) == (400, "PATCH", error.path)
    assert clone.messages_by_field() == {
        "email": ["Enter a valid email address."],
        "*": ["record is locked"],
    }
    assert clone.context == {"sync": "contacts", "source_key": "7"}


def test_retry_delay_and_mapping_problems_survive_pickling() -> None:
    limited = roundtrip(RateLimitedError("slow down", status=429, retry_after=1.5))
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 1.5

    first = MappingError(column="phone", field="mobile_phone", problem="not a phone number")
    second = MappingError(column="email", field="email", problem="not an email address")
    both = MappingError(
        column="phone",
        field="mobile_phone",
        problem="2 problems",
        problems=[first, second],
        source_key="42",
    )
    clone = roundtrip(both)
    assert isinstance(clone, MappingError)
    assert (clone.column, clone.field) == ("phone", "mobile_phone")
    assert clone.messages_by_field() == {
        "mobile_phone": ["not a phone number"],
        "email": ["not an email address"],
    }


def test_config_errors_keep_every_problem_across_pickling() -> None:
    problems = [ConfigProblem("syncs[0].fields[1].field", "unknown"), ConfigProblem("a", "b")]
    clone = roundtrip(ConfigError(problems, source="syncs.yaml"))
    assert isinstance(clone, ConfigError)
    assert clone.problems == problems
    assert "syncs.yaml" in str(clone)


def test_describe_adds_context_without_parsing_the_message() -> None:
    text = describe(SourceError("query failed"), {"sync": "contacts"})
    assert text == "query failed [sync=contacts]"
