"""Error classification, Retry-After parsing and 400 entry mapping (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from kizen_sync.client.classify import error_from_response, field_errors, parse_retry_after
from kizen_sync.errors import (
    AuthenticationError,
    ConflictError,
    FieldError,
    KizenValidationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, KizenValidationError, False),
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (409, ConflictError, False),
        (422, KizenValidationError, False),
        (429, RateLimitedError, True),
        (500, ServerError, True),
        (503, ServerError, True),
    ],
)
def test_status_maps_to_error_class(status, cls, retryable):
    response = httpx.Response(status, json={"detail": "nope"}, headers={"X-Request-ID": "req-1"})
    error = error_from_response(response, method="PATCH", path="/api/records/accounts/1")
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.status, error.method, error.path, error.request_id) == (
        status,
        "PATCH",
        "/api/records/accounts/1",
        "req-1",
    )
    assert error.body == {"detail": "nope"}


def test_rate_limit_and_503_carry_retry_after():
    limited = error_from_response(
        httpx.Response(429, headers={"Retry-After": "7"}), method="GET", path="/x"
    )
    unavailable = error_from_response(
        httpx.Response(503, headers={"Retry-After": "2"}), method="GET", path="/x"
    )
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 7.0
    assert isinstance(unavailable, ServerError)
    assert unavailable.retry_after == 2.0


def test_400_fields_are_tied_back_to_request_entries():
    entries = [
        {"name": "name", "value": "Acme"},
        {"id": "f-uuid-2", "value": "x"},
        {"name": "labels", "add_values": ["t1"]},
    ]
    body = {
        "non_field_errors": ["Record is locked."],
        "fields": [{}, {"value": ["Enter a valid value."]}, {"add_values": [{"message": "bad"}]}],
    }
    error = error_from_response(
        httpx.Response(400, json=body), method="PATCH", path="/p", entries=entries
    )
    assert isinstance(error, KizenValidationError)
    assert error.field_errors == [
        FieldError(index=1, field="f-uuid-2", messages={"value": ["Enter a valid value."]}),
        FieldError(index=2, field="labels", messages={"add_values": ["bad"]}),
    ]
    assert error.non_field_errors == ["Record is locked."]
    assert error.messages_by_field() == {
        "f-uuid-2": ["Enter a valid value."],
        "labels": ["bad"],
        "*": ["Record is locked."],
    }
    assert "f-uuid-2" in str(error)


def test_drf_style_body_keys_become_non_field_errors():
    fes, others = field_errors({"lookup_value": ["This field is required."]}, None)
    assert fes == []
    assert others == ["lookup_value: This field is required."]


def test_html_404_body_does_not_end_up_in_the_message():
    response = httpx.Response(404, text="<html><body>Not Found</body></html>")
    error = error_from_response(response, method="GET", path="/api/records/x/")
    assert "<html>" not in str(error)
    assert isinstance(error, NotFoundError)
