"""coerce(): every Kizen field type from the values warehouse drivers and DataFrames return."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kizen_sync.config import FieldMapping
from kizen_sync.errors import MappingError
from kizen_sync.mapping import coerce
from kizen_sync.schema import FIELD_TYPES, FieldOption, FieldSchema, Relation

GOLD, SILVER, BRONZE = (
    str(uuid.uuid5(uuid.NAMESPACE_DNS, n)) for n in ("gold", "silver", "bronze")
)
TIER_OPTIONS = [
    FieldOption(id=GOLD, name="Gold", code="gold"),
    FieldOption(id=SILVER, name="Silver", code="silver"),
    FieldOption(id=BRONZE, name="Bronze", code="bronze"),
]
YES, NO, MAYBE = "5620bce0-d5ac-57bd-9b69-47d271412678", "985d81c9-1580", "5dbf5815-6ed9"
TAGS = {"Strategic": "tag-strategic", "At Risk": "tag-at-risk", "Expansion": "tag-expansion"}
REC_A = "7f1e2d3c-0000-4000-8000-000000000001"
REC_B = "7f1e2d3c-0000-4000-8000-000000000002"
FIELD_ID = "0b0e6f53-2a7e-4a36-9c59-3f0f5d1b9c11"


def fld(kind: str, name: str = "f", **extra: Any) -> FieldSchema:
    return FieldSchema(id=FIELD_ID, name=name, field_type=kind, **extra)


def spec(**kw: Any) -> FieldMapping:
    return FieldMapping(column=kw.pop("column", "src_col"), field=kw.pop("field", "f"), **kw)


FIELDS: dict[str, FieldSchema] = {
    "text": fld("text"),
    "longtext": fld("longtext"),
    "wysiwyg": fld("wysiwyg"),
    "email": fld("email"),
    "phonenumber": fld("phonenumber"),
    "integer": fld("integer"),
    "decimal": fld(
        "decimal",
        decimal_options={"min_value": -999999.99, "max_value": 999999.99, "decimal_places": 2},
    ),
    "money": fld("money", money_options={"currency": "USD"}),
    "date": fld("date"),
    "datetime": fld("datetime"),
    "checkbox": fld("checkbox"),
    "dropdown": fld("dropdown", name="tier", options=TIER_OPTIONS),
    "radio": fld("radio", options=TIER_OPTIONS),
    "choices": fld("choices", options=TIER_OPTIONS),
    "status": fld("status", options=TIER_OPTIONS),
    "selector": fld("selector", options=TIER_OPTIONS),
    "yesnomaybe": fld(
        "yesnomaybe",
        options=[
            FieldOption(id=YES, name="Yes", code="yes"),
            FieldOption(id=NO, name="No", code="no"),
            FieldOption(id=MAYBE, name="Maybe", code="maybe"),
        ],
    ),
    # as Kizen generates them (live): options "1 - Low" .. "5 - High", codes "1".."5"
    "rating": fld(
        "rating",
        rating={"min_value": 1, "max_value": 5},
        options=[
            FieldOption(id=f"r{i}", name={1: "1 - Low", 5: "5 - High"}.get(i, str(i)), code=str(i))
            for i in range(1, 6)
        ],
    ),
    "timezone": fld(
        "timezone",
        options=[FieldOption(id=z, name=z) for z in ("America/Chicago", "Europe/Paris")],
    ),
    "team_selector": fld("team_selector"),
    "relationship": fld(
        "relationship", relation=Relation(relation_type="primary", cardinality="many_to_one")
    ),
    "files": fld("files"),
    "checkboxes": fld("checkboxes", name="products", options=TIER_OPTIONS),
    "dynamictags": fld("dynamictags", name="labels"),
}
TO_MANY = fld(
    "relationship",
    name="key_contacts",
    relation=Relation(relation_type="additional", cardinality="many_to_many"),
)
MULTI_FILES = fld("files", name="attachments", meta={"allow_multiple": True})


def test_every_kizen_field_type_has_a_case() -> None:
    assert set(FIELDS) == set(FIELD_TYPES)


def run(kind: str | FieldSchema, raw: Any, **spec_kw: Any) -> Any:
    field = FIELDS[kind] if isinstance(kind, str) else kind
    return coerce(field, spec(**spec_kw), raw, tags=TAGS)


CHICAGO = {"timezone": "America/Chicago"}

OK_CASES: list[tuple[str | FieldSchema, Any, dict[str, Any], Any]] = [
    # text: verbatim, unicode and emoji, numbers rendered as text
    ("text", "Acme  ", {}, "Acme  "),
    ("text", "  ", {}, "  "),
    ("text", "Zürich 🚀", {}, "Zürich 🚀"),
    ("text", "é" * 255, {}, "é" * 255),
    ("text", 42, {}, "42"),
    ("text", Decimal("1.50"), {}, "1.50"),
    ("text", np.str_("np"), {}, "np"),
    ("longtext", "line 1\r\nline 2\n", {}, "line 1\r\nline 2\n"),
    ("longtext", "x" * 5000, {}, "x" * 5000),
    ("wysiwyg", "<p>Hi</p>", {}, "<p>Hi</p>"),
    # email: trimmed, case kept
    ("email", "  Alex@Example.com ", {}, "Alex@Example.com"),
    # phone: E.164, national numbers read as US
    ("phonenumber", "+1 312-555-0100", {}, "+13125550100"),
    ("phonenumber", "(312) 555-0100", {}, "+13125550100"),
    ("phonenumber", 13125550100, {}, "+13125550100"),
    ("phonenumber", "+33 1 42 68 53 00", {}, "+33142685300"),
    # integer
    ("integer", 7, {}, 7),
    ("integer", "42", {}, 42),
    ("integer", " -3 ", {}, -3),
    ("integer", 3.0, {}, 3),
    ("integer", Decimal("12.000"), {}, 12),
    ("integer", np.int64(5), {}, 5),
    ("integer", 2**31 - 1, {}, 2**31 - 1),
    ("integer", -(2**31), {}, -(2**31)),
    # decimal: exact, normalised, rounded to the field's places
    ("decimal", Decimal("1.50"), {}, "1.5"),
    ("decimal", 1.5, {}, "1.5"),
    ("decimal", "1.5", {}, "1.5"),
    ("decimal", np.float64(0.1), {}, "0.1"),
    ("decimal", 100, {}, "100"),
    ("decimal", Decimal("-0.00"), {}, "0"),
    ("decimal", "2.345", {}, "2.35"),
    ("decimal", 999999.99, {}, "999999.99"),
    # no decimal_places in the schema: 2 (Kizen's 999999.99 ceiling), never more on the wire
    (fld("decimal"), Decimal("3.14159"), {}, "3.14"),
    # money: cents
    ("money", 320.81, {}, "320.81"),
    ("money", Decimal("320.810"), {}, "320.81"),
    ("money", "1000000", {}, "1000000"),
    ("money", 0.005, {}, "0.01"),
    # date
    ("date", date(2026, 3, 1), {}, "2026-03-01"),
    ("date", "2026-03-01", {}, "2026-03-01"),
    ("date", datetime(2026, 3, 1, 23, 59), {}, "2026-03-01"),
    ("date", pd.Timestamp("2026-03-01"), {}, "2026-03-01"),
    ("date", np.datetime64("2026-03-01"), {}, "2026-03-01"),
    ("date", datetime(2026, 3, 2, 3, 0, tzinfo=UTC), CHICAGO, "2026-03-01"),
    ("date", "2026-03-01T10:00:00", {}, "2026-03-01"),
    # datetime: aware -> UTC; naive -> the column's zone
    ("datetime", datetime(2026, 3, 1, 8, 30, tzinfo=UTC), {}, "2026-03-01T08:30:00.000000+00:00"),
    (
        "datetime",
        datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=-5))),
        {},
        "2026-03-01T13:30:00.000000+00:00",
    ),
    ("datetime", datetime(2026, 3, 1, 8, 30), {}, "2026-03-01T08:30:00.000000+00:00"),
    ("datetime", datetime(2026, 3, 1, 8, 30), CHICAGO, "2026-03-01T14:30:00.000000+00:00"),
    ("datetime", datetime(2026, 7, 1, 8, 30), CHICAGO, "2026-07-01T13:30:00.000000+00:00"),
    # ambiguous hour (DST ends): the first occurrence, CDT (UTC-5)
    ("datetime", datetime(2026, 11, 1, 1, 30), CHICAGO, "2026-11-01T06:30:00.000000+00:00"),
    ("datetime", "2026-03-01T08:30:00Z", {}, "2026-03-01T08:30:00.000000+00:00"),
    ("datetime", "2026-03-01 08:30:00.123456+01:00", {}, "2026-03-01T07:30:00.123456+00:00"),
    (
        "datetime",
        pd.Timestamp("2026-03-01 08:30:00.123456789", tz="UTC"),
        {},
        "2026-03-01T08:30:00.123456+00:00",
    ),
    ("datetime", np.datetime64("2026-03-01T08:30:00"), {}, "2026-03-01T08:30:00.000000+00:00"),
    ("datetime", date(2026, 3, 1), CHICAGO, "2026-03-01T06:00:00.000000+00:00"),
    # checkbox
    ("checkbox", True, {}, True),
    ("checkbox", np.bool_(False), {}, False),
    ("checkbox", 1, {}, True),
    ("checkbox", 0, {}, False),
    ("checkbox", "yes", {}, True),
    ("checkbox", " F ", {}, False),
    ("checkbox", "TRUE", {}, True),
    ("checkbox", "off", {}, False),
    # options by label (case-insensitive) or id/code
    ("dropdown", "Gold", {}, GOLD),
    ("dropdown", " silver ", {}, SILVER),
    ("dropdown", GOLD, {"match": "id"}, GOLD),
    ("dropdown", "bronze", {"match": "id"}, BRONZE),
    ("radio", "BRONZE", {}, BRONZE),
    ("choices", "Gold", {}, GOLD),
    ("status", "Silver", {}, SILVER),
    ("selector", "Bronze", {}, BRONZE),
    ("yesnomaybe", "maybe", {}, MAYBE),
    ("yesnomaybe", True, {}, YES),
    ("yesnomaybe", False, {}, NO),
    # rating, timezone, references
    ("rating", 4, {}, 4),
    ("rating", "5", {}, 5),
    ("rating", 3.0, {}, 3),
    ("timezone", "America/Chicago", {}, "America/Chicago"),
    (fld("timezone"), "Asia/Tokyo", {}, "Asia/Tokyo"),
    (
        "team_selector",
        "916DAC1B-5640-4268-9324-06132F342488",
        {},
        "916dac1b-5640-4268-9324-06132f342488",
    ),
    ("team_selector", uuid.UUID(REC_A), {}, REC_A),
    ("relationship", f" {REC_A} ", {}, REC_A),
    ("files", REC_B, {}, REC_B),
    # multi-valued: list, delimited, JSON, auto; sorted unique ids
    ("checkboxes", ["Silver", "Gold", "gold"], {}, sorted([GOLD, SILVER])),
    (
        "checkboxes",
        "Gold; Bronze ;; ",
        {"format": "delimited", "delimiter": ";"},
        sorted([GOLD, BRONZE]),
    ),
    ("checkboxes", '["Gold", "Silver"]', {"format": "json"}, sorted([GOLD, SILVER])),
    ("checkboxes", '["Gold"]', {}, [GOLD]),
    ("checkboxes", "Gold, Silver", {}, sorted([GOLD, SILVER])),
    ("checkboxes", np.array(["Bronze"]), {}, [BRONZE]),
    ("checkboxes", [GOLD, "silver"], {"match": "id"}, sorted([GOLD, SILVER])),
    ("checkboxes", [], {}, []),
    ("checkboxes", "[]", {}, []),
    ("checkboxes", ["Gold", None, float("nan"), ""], {}, [GOLD]),
    ("dynamictags", "strategic, AT RISK", {}, sorted(["tag-strategic", "tag-at-risk"])),
    ("dynamictags", ["tag-expansion"], {"match": "id"}, ["tag-expansion"]),
    (TO_MANY, [REC_B, REC_A.upper(), REC_A], {}, [REC_A, REC_B]),
    (TO_MANY, f"{REC_B}|{REC_A}", {"format": "delimited", "delimiter": "|"}, [REC_A, REC_B]),
    (MULTI_FILES, f'["{REC_A}"]', {}, [REC_A]),
]


@pytest.mark.parametrize(("kind", "raw", "spec_kw", "expected"), OK_CASES)
def test_coerces_to_canonical(kind: Any, raw: Any, spec_kw: dict[str, Any], expected: Any) -> None:
    assert run(kind, raw, **spec_kw) == expected


@pytest.mark.parametrize("kind", sorted(FIELDS))
@pytest.mark.parametrize(
    "raw", [None, float("nan"), np.float64("nan"), pd.NaT, pd.NA, np.datetime64("NaT"), ""]
)
def test_every_null_spelling_is_none(kind: str, raw: Any) -> None:
    assert run(kind, raw) is None


@pytest.mark.parametrize("kind", ["integer", "decimal", "date", "email", "dropdown", "checkboxes"])
def test_whitespace_only_is_null_except_for_text(kind: str) -> None:
    assert run(kind, "   ") is None


ERROR_CASES: list[tuple[str | FieldSchema, Any, dict[str, Any], str]] = [
    ("text", "x" * 256, {}, "text is 256 characters; Kizen allows 255"),
    ("text", "🚀" * 256, {}, "text is 256 characters; Kizen allows 255"),
    ("text", ["a"], {}, "holds one value, got a list of 1"),
    ("text", b"bytes", {}, "expected text, got bytes"),
    ("email", "not-an-email", {}, "'not-an-email' is not a valid email address"),
    ("email", "a@b@c.com", {}, "is not a valid email address"),
    ("email", 42, {}, "expected an email address as text"),
    (
        "phonenumber",
        "555-01",
        {},
        "'555-01' is not a valid phone number (E.164 needed, e.g. +13125550100)",
    ),
    ("phonenumber", "call me", {}, "is not a valid phone number"),
    ("phonenumber", "+1 312 555 0100 ext. 12", {}, "has an extension (12)"),
    ("integer", 3.5, {}, "3.5 is not a whole number"),
    ("integer", "4.2", {}, "'4.2' is not a whole number"),
    ("integer", 2**31, {}, "2147483648 does not fit a 4-byte integer"),
    ("integer", -(2**31) - 1, {}, "-2147483649 does not fit a 4-byte integer"),
    ("integer", "forty", {}, "'forty' is not a number"),
    ("integer", True, {}, "True is a boolean, not a number"),
    ("integer", float("inf"), {}, "inf is not a number Kizen can store"),
    ("decimal", Decimal("NaN"), {}, "NaN is not a number Kizen can store"),
    ("decimal", "NaN", {}, "NaN is not a number Kizen can store"),
    ("decimal", Decimal("-Infinity"), {}, "-Infinity is not a number Kizen can store"),
    ("decimal", 1000000, {}, "1000000 is above the maximum of f (999999.99)"),
    ("decimal", "-1e7", {}, "is below the minimum of f (-999999.99)"),
    (fld("decimal"), Decimal("1000000.00"), {}, "above the maximum of f (999999.99)"),
    ("money", float("-inf"), {}, "-inf is not a number Kizen can store"),
    ("date", "03/01/2026", {}, "'03/01/2026' is not an ISO date (YYYY-MM-DD)"),
    ("date", 20260301, {}, "expected a date, got int"),
    ("datetime", "yesterday", {}, "is not an ISO 8601 datetime"),
    (
        "datetime",
        datetime(2026, 3, 8, 2, 30),
        CHICAGO,
        "datetime 2026-03-08 02:30 does not exist in America/Chicago",
    ),
    ("checkbox", "maybe", {}, "'maybe' is not a checkbox value"),
    ("checkbox", 2, {}, "2 is not a checkbox value"),
    (
        "dropdown",
        "Platinum",
        {},
        "value 'Platinum' is not an option of tier (options: Gold, Silver, Bronze)",
    ),
    (
        "dropdown",
        "Gold",
        {"match": "id"},
        f"'Gold' is not an option id of tier (options: Gold={GOLD}",
    ),
    (
        "yesnomaybe",
        "Perhaps",
        {},
        "value 'Perhaps' is not an option of f (options: Yes, No, Maybe)",
    ),
    ("rating", 6, {}, "rating 6 is outside the scale of f (1..5)"),
    ("rating", 0, {}, "rating 0 is outside the scale of f (1..5)"),
    ("rating", 2.5, {}, "2.5 is not a whole number"),
    (
        "timezone",
        "Asia/Tokyo",
        {},
        "'Asia/Tokyo' is not a time zone of f (options: America/Chicago, Europe/Paris)",
    ),
    (fld("timezone"), "Mars/Olympus", {}, "'Mars/Olympus' is not an IANA time zone name"),
    ("team_selector", "alex", {}, "'alex' is not a team member id (a UUID"),
    ("relationship", "Acme Corp", {}, "'Acme Corp' is not a related record id"),
    ("relationship", [REC_A], {}, "holds one value, got a list of 1"),
    ("files", 17, {}, "17 is not a file id"),
    (
        "checkboxes",
        "Gold, Platinum, Diamond",
        {},
        "value 'Platinum' is not an option of products (options: Gold, Silver, Bronze); "
        "value 'Diamond'",
    ),
    (
        "checkboxes",
        "Gold",
        {"format": "list"},
        "expected an array column, got text 'Gold'; set format: delimited or json",
    ),
    ("checkboxes", '{"a": 1}', {"format": "json"}, "is JSON but not an array"),
    ("checkboxes", "Gold, Silver", {"format": "json"}, "is not a JSON array"),
    ("checkboxes", 5, {}, "expected several values (an array or text), got int"),
    (
        "dynamictags",
        "Strategic, Gold",
        {},
        "tag 'Gold' is not a tag of labels (tags: At Risk, Expansion, Strategic)",
    ),
    ("dynamictags", ["tag-nope"], {"match": "id"}, "'tag-nope' is not a tag id of labels"),
    (TO_MANY, [REC_A, "nope"], {}, "'nope' is not a related record id"),
]


@pytest.mark.parametrize(("kind", "raw", "spec_kw", "message"), ERROR_CASES)
def test_rejects_with_an_actionable_message(
    kind: Any, raw: Any, spec_kw: dict[str, Any], message: str
) -> None:
    field = FIELDS[kind] if isinstance(kind, str) else kind
    with pytest.raises(MappingError) as info:
        run(kind, raw, column="warehouse_col", **spec_kw)
    error = info.value
    assert message in error.problem
    assert error.column == "warehouse_col"
    assert error.field == field.name
    assert "'warehouse_col'" in str(error)
    assert f"'{field.name}'" in str(error)


def test_unknown_dynamic_tags_cannot_be_resolved_by_label() -> None:
    with pytest.raises(MappingError, match="dynamic tags of labels are not known"):
        coerce(FIELDS["dynamictags"], spec(), "Strategic")


def test_tag_ids_pass_unchecked_when_tags_were_not_loaded() -> None:
    assert coerce(FIELDS["dynamictags"], spec(match="id"), "t1, t2") == ["t1", "t2"]


def test_rating_scale_falls_back_to_option_codes_then_to_ten() -> None:
    by_options = fld(
        "rating", options=[FieldOption(id=f"r{i}", name=f"{i} - x", code=str(i)) for i in (1, 2, 3)]
    )
    assert coerce(by_options, spec(), "3 - x") == 3
    with pytest.raises(MappingError, match=r"\(1\.\.3\)"):
        coerce(by_options, spec(), 4)
    assert coerce(fld("rating"), spec(), 10) == 10
