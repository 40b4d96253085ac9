"""Coercion of single-valued, value-typed fields: text, email, phone, numbers, dates, checkbox.

Each function takes the :class:`~kizen_sync.mapping.common.Context` and a non-blank raw value
(numpy scalars already turned into Python values) and returns the canonical form, or raises
:class:`~kizen_sync.mapping.common.Problem`. Canonical forms are JSON-native and stable, so a
value read back from ``sync_state.values_json`` compares equal to a fresh coercion:

=============  ====================================================================
text types     ``str``, verbatim (no trimming, no newline rewriting)
email          ``str``, trimmed, case preserved
phonenumber    E.164 ``str``
integer        ``int``
decimal/money  ``str`` of the exact decimal without trailing zeros (``"1.5"``, ``"100"``)
date           ``"YYYY-MM-DD"``
datetime       UTC ISO 8601 with microseconds (``"2026-03-01T08:30:00.000000+00:00"``)
checkbox       ``bool``
=============  ====================================================================
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from kizen_sync.mapping.common import Context, Problem, show

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "TEXT_MAX",
    "checkbox",
    "date_value",
    "datetime_value",
    "decimal",
    "email",
    "integer",
    "longtext",
    "money",
    "number",
    "phone",
    "text",
    "whole_number",
]

#: Kizen's ``text`` fields hold at most 255 characters, counted as Python (and Django) do:
#: in code points, so an emoji made of several code points counts several times.
TEXT_MAX = 255
#: Kizen integers are 4-byte.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: Kizen answers 500 above this decimal when the field sets no ``max_value`` (kizen-api.md 4).
DECIMAL_MAX = Decimal("999999.99")
#: Decimal places kept when the field's ``decimal_options`` do not say: Kizen's ceiling is
#: "six digits before the decimal point, two after" (AE), and it may refuse more places
#: rather than round them, so values are rounded here before they are sent.
DECIMAL_PLACES = 2
#: Phone numbers without a ``+country`` prefix are read as US national numbers.
PHONE_REGION = "US"

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def _stringify(raw: Any) -> str:
    """Text from any scalar a driver returns; lists, dicts and bytes are refused."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | Decimal | UUID):
        return str(raw)
    if isinstance(raw, float):
        return str(number(raw))
    if isinstance(raw, date):
        return raw.isoformat()
    raise Problem(f"expected text, got {type(raw).__name__} {show(raw)}")


def longtext(ctx: Context, raw: Any) -> str:
    """Long text and wysiwyg: any text, kept verbatim so Kizen holds what the warehouse holds."""
    return _stringify(raw)


def text(ctx: Context, raw: Any) -> str:
    """Single-line text: verbatim, at most :data:`TEXT_MAX` code points."""
    value = _stringify(raw)
    if len(value) > TEXT_MAX:
        raise Problem(f"text is {len(value)} characters; Kizen allows {TEXT_MAX}")
    return value


def email(ctx: Context, raw: Any) -> str:
    """Trimmed and syntax-checked (no DNS lookup: planning must stay pure and fast)."""
    if not isinstance(raw, str):
        raise Problem(f"expected an email address as text, got {type(raw).__name__} {show(raw)}")
    value = raw.strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Problem(f"{show(value)} is not a valid email address ({exc})") from None
    return value


def phone(ctx: Context, raw: Any) -> str:
    """E.164 via ``phonenumbers``; national numbers are read as US ones (:data:`PHONE_REGION`).

    Extensions are refused rather than dropped: E.164 cannot hold them, and a silently
    shortened number would reach the wrong desk.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise Problem(f"expected a phone number as text, got {type(raw).__name__} {show(raw)}")
    value = str(raw).strip()
    hint = "E.164 needed, e.g. +13125550100"
    try:
        parsed = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise Problem(f"{show(raw)} is not a valid phone number ({hint})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise Problem(f"{show(raw)} is not a valid phone number ({hint})")
    if parsed.extension:
        raise Problem(
            f"{show(raw)} has an extension ({parsed.extension}), which a Kizen phone number "
            "(E.164) cannot hold"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def number(raw: Any) -> Decimal:
    """An exact, finite Decimal from an int, float, Decimal or numeric text.

    Floats go through their shortest ``repr`` (``0.1`` -> ``Decimal("0.1")``), which is the
    value the warehouse displayed, not the binary fraction behind it.
    """
    if isinstance(raw, bool):
        raise Problem(f"{raw} is a boolean, not a number")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        value = Decimal(repr(raw))
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise Problem(f"{show(raw)} is not a number") from None
    else:
        raise Problem(f"expected a number, got {type(raw).__name__} {show(raw)}")
    if not value.is_finite():
        raise Problem(
            f"{raw if isinstance(raw, str | float) else value} is not a number Kizen can store"
        )
    return value


def whole_number(raw: Any) -> int:
    """An int from any number without a fractional part (``3.0`` and ``"42"`` pass, ``3.5`` not)."""
    value = number(raw)
    if value != value.to_integral_value():
        raise Problem(f"{show(raw)} is not a whole number")
    return int(value)


def integer(ctx: Context, raw: Any) -> int:
    """A whole number within Kizen's 4-byte range."""
    value = whole_number(raw)
    if not INT_MIN <= value <= INT_MAX:
        raise Problem(f"{value} does not fit a 4-byte integer ({INT_MIN}..{INT_MAX})")
    return value


def _canonical_decimal(value: Decimal) -> str:
    """``"1.5"`` for 1.50, ``"100"`` for 1E+2, ``"0"`` for -0.00: one spelling per number."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _round(value: Decimal, places: int) -> Decimal:
    """Half-up to ``places``, as Kizen stores it; a number too large to round stays as is
    (the range check that follows rejects it or Kizen does).
    """
    try:
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return value


def decimal(ctx: Context, raw: Any) -> str:
    """Exact decimal within the field's ``decimal_options`` range, rounded to its places.

    Rounding to ``decimal_places`` (:data:`DECIMAL_PLACES` when the field does not say)
    makes the canonical value the one Kizen will hold, so reading it back compares equal,
    and never sends more places than Kizen keeps (it may refuse them). Without a
    ``max_value`` the bound is :data:`DECIMAL_MAX`, above which Kizen fails with a 500
    instead of a validation error.
    """
    options = ctx.field.decimal_options or {}
    value = number(raw)
    places = options.get("decimal_places")
    value = _round(value, places if isinstance(places, int) else DECIMAL_PLACES)
    high = number(options.get("max_value", DECIMAL_MAX))
    low = number(options.get("min_value", -high))
    if value > high:
        raise Problem(f"{show(raw)} is above the maximum of {ctx.field.name} ({high})")
    if value < low:
        raise Problem(f"{show(raw)} is below the minimum of {ctx.field.name} ({low})")
    return _canonical_decimal(value)


def money(ctx: Context, raw: Any) -> str:
    """An amount in the field's currency, rounded half-up to cents as Kizen stores it."""
    return _canonical_decimal(_round(number(raw), 2))


def date_value(ctx: Context, raw: Any) -> str:
    """``"YYYY-MM-DD"`` from a date, a datetime (its date in ``spec.timezone``) or ISO text."""
    if isinstance(raw, datetime):
        if raw.utcoffset() is not None:
            raw = raw.astimezone(ZoneInfo(ctx.timezone))
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    if isinstance(raw, str):
        value = raw.strip()
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        try:
            return date_value(ctx, datetime.fromisoformat(value))
        except ValueError:
            raise Problem(f"{show(raw)} is not an ISO date (YYYY-MM-DD)") from None
    raise Problem(f"expected a date, got {type(raw).__name__} {show(raw)}")


def _localize(naive: datetime, zone_name: str) -> datetime:
    """Attach ``zone_name`` to a wall-clock time, refusing times the zone skips.

    A time that occurs twice (the hour repeated when daylight saving time ends) takes its
    first occurrence (``fold=0``), which is what most databases do when casting.
    """
    zone = ZoneInfo(zone_name)
    aware = naive.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise Problem(
            f"datetime {naive:%Y-%m-%d %H:%M} does not exist in {zone_name} (the clocks "
            "skip it when daylight saving time starts); fix the value or the column's "
            "timezone"
        )
    return aware


def datetime_value(ctx: Context, raw: Any) -> str:
    """UTC ISO 8601 with microseconds; naive values are wall-clock times in ``spec.timezone``."""
    if isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise Problem(
                f"{show(raw)} is not an ISO 8601 datetime (e.g. 2026-03-01T14:30:00Z)"
            ) from None
    elif isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime.combine(raw, time())
    else:
        raise Problem(f"expected a datetime, got {type(raw).__name__} {show(raw)}")
    if value.utcoffset() is None:
        value = _localize(value.replace(tzinfo=None), ctx.timezone)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def checkbox(ctx: Context, raw: Any) -> bool:
    """A bool from a bool, 0/1, or words such as true/false, yes/no, t/f, on/off."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float | Decimal) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise Problem(f"{show(raw)} is not a checkbox value (use true/false, yes/no or 1/0)")
