"""Failures grouped by reason: error class + field + message pattern (pure)."""

from __future__ import annotations

import json

from kizen_sync.failure_groups import failure_reason, group_failures


def mapping_failure(key: str, value: str) -> dict[str, object]:
    return {
        "source_key": key,
        "kizen_id": None,
        "error_class": "MappingError",
        "error_message": f"column 'mail' -> field 'email': {value!r} is not a valid email address",
        "field_errors": json.dumps({"email": [f"{value!r} is not a valid email address"]}),
        "parked": True,
    }


def test_failures_that_differ_only_in_their_values_form_one_group() -> None:
    rows = [mapping_failure(str(i), f"user{i}(at)example") for i in range(5)]
    rows.append(
        {
            "source_key": "9",
            "kizen_id": "7f1e2d3c-0000-4000-8000-000000000009",
            "error_class": "NotFoundError",
            "error_message": "Kizen record 7f1e2d3c-0000-4000-8000-000000000009 was deleted",
            "parked": False,
        }
    )
    groups = group_failures(rows)
    assert [(g.count, g.parked, g.error_class, g.field) for g in groups] == [
        (5, 5, "MappingError", "email"),
        (1, 0, "NotFoundError", None),
    ]
    assert groups[0].reason == "MappingError · email: '…' is not a valid email address"
    assert groups[0].example_row["source_key"] == "0"
    assert "user0(at)example" in groups[0].example
    assert groups[1].reason == "NotFoundError: Kizen record <id> was deleted"
    assert groups[1].kizen_ids == ["7f1e2d3c-0000-4000-8000-000000000009"]


def test_reason_falls_back_to_the_message_prefix_and_numbers_are_patterns() -> None:
    row = {
        "error_class": "MappingError",
        "message": "column 'n' -> field 'employees': 12.5 is not a whole number",
    }
    assert failure_reason(row) == "MappingError · employees: N is not a whole number"
    phone = {
        "error_class": "MappingError",
        "message": "column 'm' -> field 'mobile_phone': 'x' is not a valid phone number "
        "(E.164 needed, e.g. +13125550100)",
    }
    # A number that is part of a name is the same in every message of the kind.
    assert failure_reason(phone).endswith("(E.164 needed, e.g. N)")
    # So is the HTTP status a Kizen message opens with.
    locked = {"error_class": "ConflictError", "message": "409 Record 12 is locked."}
    assert failure_reason(locked) == "ConflictError: 409 Record N is locked."
    assert failure_reason({}) == "Error"
