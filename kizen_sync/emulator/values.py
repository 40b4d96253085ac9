"""Per-field-type write validation and read rendering (docs/kizen-api.md section 4).

Write values are turned into a compact stored form (strings, numbers, ids, lists of ids) so
that reads can render the documented shapes from current data: a related record renamed later
shows its new name, exactly as Kizen resolves relations at read time. Every rejection raises
:class:`ValueRejected` carrying Kizen's error code, which the record service places at the
position of the offending request entry.

Where a source shows Kizen refusing something, so does the emulator (``docs/architecture.md``,
"Wire shapes"): a ``files`` value is an array of ids of files uploaded to the business, never
a bare id; a rating is one of its field's options; a decimal with more places than its field
keeps is refused, not rounded. Datetimes are stored in UTC and rendered in the business's time
zone with its offset, as the live captures show.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from kizen_sync.emulator.business import FieldDef, TeamMember

__all__ = [
    "Resolver",
    "ValueRejected",
    "is_blank",
    "render",
    "render_datetime",
    "validate_items",
    "validate_value",
]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_MONEY_MAX = Decimal("999999999999.99")
_TEXT_MAX = 255
_OPTION_TYPES = frozenset({"dropdown", "radio", "choices", "status", "yesnomaybe", "selector"})


class ValueRejected(Exception):
    """A write value Kizen would refuse; ``code`` is the error code put in the response."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Resolver(Protocol):
    """What validation and rendering need from the record store."""

    team: dict[str, TeamMember]
    #: Files uploaded to the business, by id: the only ids a ``files`` field accepts.
    files: dict[str, dict[str, Any]]
    #: The business's IANA time zone, in which datetimes are rendered.
    timezone: str

    def live_record_exists(self, object_id: str, record_id: str) -> bool:
        """True when the record exists in that object and is not archived."""
        ...

    def relation_shape(self, object_id: str, record_id: str) -> dict[str, Any] | None:
        """``{id, name}`` (contacts ``{id, first_name, last_name, email}``) or ``None``."""
        ...


def is_blank(value: Any) -> bool:
    """Blank values are not stored and are omitted from record responses."""
    return value is None or value == "" or value == []


def _ref(raw: Any, what: str) -> str:
    """A bare id or ``{"id": ...}``: the two write shapes Kizen's clients use."""
    if isinstance(raw, dict) and set(raw) == {"id"}:
        raw = raw["id"]
    if not isinstance(raw, str) or not raw:
        raise ValueRejected(f'Expected a {what} id or {{"id": ...}}.')
    return raw


def _uuid_ref(raw: Any, what: str) -> str:
    ref = _ref(raw, what)
    if not _UUID.match(ref):
        raise ValueRejected(f"'{ref}' is not a valid UUID.")
    return ref.lower()


def _string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueRejected("Not a valid string.")
    return raw


def _text(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _string(raw)
    if len(value) > _TEXT_MAX:
        raise ValueRejected(
            f"Ensure this field has no more than {_TEXT_MAX} characters.", "max_length"
        )
    return value


def _longtext(f: FieldDef, raw: Any, _: Resolver) -> str:
    return _string(raw)


def _email(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _string(raw).strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValueRejected("Enter a valid email address.") from None
    return value


def _phone(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _string(raw).strip()
    if not value.startswith("+"):
        raise ValueRejected("Enter a valid phone number in E.164 format, e.g. +13125550100.")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueRejected("Enter a valid phone number.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueRejected("Enter a valid phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _number(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueRejected("A valid number is required.")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueRejected("A valid number is required.")
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueRejected("A valid number is required.") from None
    if not number.is_finite():
        raise ValueRejected("A valid number is required.")
    return number


def _integer(f: FieldDef, raw: Any, _: Resolver) -> int:
    number = _number(raw)
    if number != number.to_integral_value():
        raise ValueRejected("A valid integer is required.")
    if not _INT_MIN <= number <= _INT_MAX:
        raise ValueRejected(f"Ensure this value is between {_INT_MIN} and {_INT_MAX}.", "max_value")
    return int(number)


def _places(number: Decimal, places: int) -> float:
    """The number as stored; more decimal places than the field keeps is refused (Kizen may
    refuse rather than round: no source shows it rounding), with Django's message.
    """
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValueRejected(
            f"Ensure that there are no more than {places} decimal places.", "max_decimal_places"
        )
    return float(number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


def _decimal(f: FieldDef, raw: Any, _: Resolver) -> float:
    number = _number(raw)
    opts = f.spec.get("decimal_options") or {}
    high = Decimal(str(opts.get("max_value", "999999.99")))
    low = Decimal(str(opts.get("min_value", -high)))
    if number > high:
        raise ValueRejected(f"Ensure this value is less than or equal to {high}.", "max_value")
    if number < low:
        raise ValueRejected(f"Ensure this value is greater than or equal to {low}.", "min_value")
    return _places(number, int(opts.get("decimal_places", 2)))


def _money(f: FieldDef, raw: Any, _: Resolver) -> float:
    number = _number(raw)
    if abs(number) > _MONEY_MAX:
        raise ValueRejected(
            f"Ensure the amount is at most {_MONEY_MAX} in absolute value.", "max_value"
        )
    return _places(number, 2)


def _date(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _string(raw)
    try:
        parsed = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueRejected("Date has wrong format. Use YYYY-MM-DD.")
    return parsed.isoformat()


def _datetime(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _string(raw)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueRejected("Datetime has wrong format. Use ISO 8601.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def render_datetime(stored: str, zone: str) -> str:
    """A stored UTC datetime as Kizen renders it: in the business's zone, with its offset."""
    return (
        datetime.fromisoformat(stored).astimezone(ZoneInfo(zone)).isoformat(timespec="microseconds")
    )


def _checkbox(f: FieldDef, raw: Any, _: Resolver) -> bool:
    if not isinstance(raw, bool):
        raise ValueRejected("Must be a valid boolean.")
    return raw


def _option(f: FieldDef, raw: Any, _: Resolver) -> str:
    if isinstance(raw, dict) and set(raw) == {"name"} and isinstance(raw["name"], str):
        opt = f.options_by_label.get(raw["name"].strip().casefold())
        if opt is None:
            raise ValueRejected(f"No option named '{raw['name']}'.", "does_not_exist")
        return str(opt["id"])
    ref = _ref(raw, "option")
    if ref not in f.options_by_id:
        raise ValueRejected(f"Invalid option id '{ref}'.", "does_not_exist")
    return ref


def _rating(f: FieldDef, raw: Any, ctx: Resolver) -> str:
    """Ratings are option-backed (live): an option as for a dropdown, or the rating number,
    which is matched to the option whose code it is (what Kizen's CLI sends; unverified).
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        option = next((o for o in f.options_by_id.values() if o.get("code") == str(raw)), None)
        if option is None:
            codes = sorted(int(o["code"]) for o in f.options_by_id.values())
            low, high = (codes[0], codes[-1]) if codes else (1, 5)
            raise ValueRejected(f"Rating must be between {low} and {high}.", "invalid_choice")
        return str(option["id"])
    return _option(f, raw, ctx)


def _timezone(f: FieldDef, raw: Any, _: Resolver) -> str:
    value = _ref(raw, "timezone")
    if value not in f.options_by_id:
        raise ValueRejected(f"'{value}' is not a valid timezone choice.", "invalid_choice")
    return value


def _team(f: FieldDef, raw: Any, ctx: Resolver) -> str:
    ref = _uuid_ref(raw, "team member")
    member = ctx.team.get(ref)
    if member is None or not member.active:
        raise ValueRejected(f"No active team member with id '{ref}'.", "does_not_exist")
    return ref


def _related(f: FieldDef, raw: Any, ctx: Resolver) -> str:
    ref = _uuid_ref(raw, "record")
    target = str((f.relation or {}).get("related_object"))
    if not ctx.live_record_exists(target, ref):
        raise ValueRejected(f"Related record '{ref}' does not exist.", "does_not_exist")
    return ref


def _file(f: FieldDef, raw: Any, ctx: Resolver) -> str:
    ref = _uuid_ref(raw, "file")
    if ref not in ctx.files:
        raise ValueRejected(f"File '{ref}' was not uploaded.", "does_not_exist")
    return ref


def _files(f: FieldDef, raw: Any, ctx: Resolver) -> list[str]:
    """A files value is an array of uploaded-file ids (AE); one file at most unless the
    field allows several. A bare id is refused: that is not Kizen's shape.
    """
    if not isinstance(raw, list):
        raise ValueRejected(
            f'Expected a list of items but got type "{type(raw).__name__}".', "not_a_list"
        )
    ids = list(dict.fromkeys(_file(f, item, ctx) for item in raw))
    if len(ids) > 1 and not f.allow_multiple:
        raise ValueRejected(f"Field '{f.name}' holds one file.", "invalid")
    return ids


def _tag(f: FieldDef, raw: Any, _: Resolver) -> str:
    if isinstance(raw, dict) and set(raw) == {"name"} and isinstance(raw["name"], str):
        tag = f.tags_by_label.get(raw["name"].strip().casefold())
        if tag is None:
            raise ValueRejected(f"No tag named '{raw['name']}'.", "does_not_exist")
        return str(tag["id"])
    ref = _ref(raw, "tag")
    if ref not in f.tags_by_id:
        raise ValueRejected(f"Invalid tag id '{ref}'.", "does_not_exist")
    return ref


_Scalar = Callable[[FieldDef, Any, Resolver], Any]

_SCALARS: dict[str, _Scalar] = {
    "text": _text,
    "longtext": _longtext,
    "wysiwyg": _longtext,
    "email": _email,
    "phonenumber": _phone,
    "integer": _integer,
    "decimal": _decimal,
    "money": _money,
    "date": _date,
    "datetime": _datetime,
    "checkbox": _checkbox,
    "rating": _rating,
    "timezone": _timezone,
    "team_selector": _team,
    "relationship": _related,
    "files": _files,
    **dict.fromkeys(_OPTION_TYPES, _option),
}

#: Validators of one item of a multi-valued field.
_ITEMS: dict[str, _Scalar] = {
    "checkboxes": _option,
    "dynamictags": _tag,
    "relationship": _related,
    "files": _file,
}


def validate_items(f: FieldDef, raw: Any, ctx: Resolver) -> list[str]:
    """Validate the list of a multi-valued field; duplicates collapse, order is kept."""
    if not isinstance(raw, list):
        raise ValueRejected(
            f'Expected a list of items but got type "{type(raw).__name__}".', "not_a_list"
        )
    check = _ITEMS[f.field_type]
    return list(dict.fromkeys(check(f, item, ctx) for item in raw))


def validate_value(f: FieldDef, raw: Any, ctx: Resolver) -> Any:
    """Validate a ``value`` for the field; ``None`` means "clear" and is checked by the caller."""
    if f.field_type == "files":
        return _files(f, raw, ctx)
    if f.multi:
        return validate_items(f, raw, ctx)
    if f.field_type in ("checkboxes", "dynamictags"):
        raise ValueRejected("This field takes a list.", "not_a_list")
    if f.field_type == "text" and raw == "" and not f.spec.get("allows_empty", True):
        raise ValueRejected("This field may not be blank.", "blank")
    return _SCALARS[f.field_type](f, raw, ctx)


def _option_shape(f: FieldDef, option_id: str) -> dict[str, Any]:
    opt = f.options_by_id.get(option_id, {"id": option_id, "code": None, "name": option_id})
    return {"id": opt["id"], "code": opt.get("code"), "name": opt["name"]}


def _tag_shape(f: FieldDef, tag_id: str) -> dict[str, Any]:
    tag = f.tags_by_id.get(tag_id, {"name": tag_id})
    return {"id": tag_id, "name": tag["name"]}


def render(f: FieldDef, stored: Any, ctx: Resolver) -> Any:
    """The documented read shape of a stored value (unknown ones as described in README)."""
    kind = f.field_type
    if kind == "datetime":
        return render_datetime(stored, ctx.timezone)
    if kind == "money":
        opts = f.spec.get("money_options") or {}
        return {
            "currency": opts.get("currency", "USD"),
            "symbol": opts.get("symbol", "$"),
            "amount": stored,
        }
    if kind in _OPTION_TYPES or kind == "rating":
        return _option_shape(f, stored)
    if kind == "checkboxes":
        return [_option_shape(f, s) for s in stored]
    if kind == "dynamictags":
        return [_tag_shape(f, s) for s in stored]
    if kind == "team_selector":
        member = ctx.team.get(stored)
        return member.read_shape() if member else {"id": stored, "deleted": True}
    if kind == "relationship":
        target = str((f.relation or {}).get("related_object"))
        if f.multi:
            shapes = (ctx.relation_shape(target, s) for s in stored)
            return [s for s in shapes if s is not None]
        return ctx.relation_shape(target, stored)
    if kind == "files":
        ids = stored if isinstance(stored, list) else [stored]
        return [{"id": s, "name": str(ctx.files.get(s, {}).get("name", ""))} for s in ids]
    return stored
