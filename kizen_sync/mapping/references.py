"""Coercion of fields whose value refers to something Kizen knows: options, ratings, time
zones, team members, related records, files, dynamic tags, and lists of any of those.

Options are resolved against the field's schema here, before any request, so that a label
the CRM does not have fails the row with the list of labels that would work, instead of a
positional 400 from Kizen. Multi-valued canonical values are sorted lists of unique ids:
comparing two of them is comparing sets, and the JSON stored in ``sync_state`` is stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kizen_sync.mapping.common import (
    UUID_RE,
    Context,
    Problem,
    is_blank,
    plain,
    show,
    text_of,
    uuid_of,
)
from kizen_sync.mapping.scalars import whole_number
from kizen_sync.schema import FieldSchema

__all__ = [
    "ItemCoercer",
    "file_id",
    "ids",
    "item_texts",
    "option_id",
    "rating",
    "related_id",
    "tag_id",
    "team_member_id",
    "timezone_name",
]

#: At most this many choices are listed in a message (contacts' time zones are many).
_LISTED = 12
#: Default rating scale when the schema gives neither ``rating`` bounds nor options: the
#: widest Kizen offers, so a valid rating is never refused locally.
_RATING_DEFAULT = (1, 10)

ItemCoercer = Callable[[Context, Any], str]


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return f"{shown}, ... ({more} more)" if more > 0 else shown or "none"


def _options_text(field: FieldSchema, by_id: bool) -> str:
    options = field.options or []
    if by_id:
        return _listing([f"{o.name}={o.id}" for o in options])
    return _listing([o.name for o in options])


def option_id(ctx: Context, raw: Any) -> str:
    """The id of the option named (``match: label``, case-insensitive) or given by id/code.

    A yes/no/maybe field also takes a boolean (True -> Yes, False -> No).
    """
    field = ctx.field
    if field.field_type == "yesnomaybe" and isinstance(raw, bool):
        raw = "Yes" if raw else "No"
    key = text_of(raw, "an option")
    if ctx.match == "id":
        found = field.option_by_id(key)
        if found is None:
            raise Problem(
                f"{key!r} is not an option id of {field.name} "
                f"(options: {_options_text(field, by_id=True)})"
            )
        return found.id
    found = field.option_by_label(key)
    if found is None:
        raise Problem(
            f"value {key!r} is not an option of {field.name} "
            f"(options: {_options_text(field, by_id=False)})"
        )
    return found.id


def _rating_scale(field: FieldSchema) -> tuple[int, int]:
    bounds = field.rating or {}
    high = bounds.get("max_value")
    if isinstance(high, int):
        low = bounds.get("min_value", 1)
        return (low if isinstance(low, int) else 1), high
    codes = [o.code for o in field.options or [] if o.code is not None and o.code.isdigit()]
    if codes:
        return min(map(int, codes)), max(map(int, codes))
    return _RATING_DEFAULT


def rating(ctx: Context, raw: Any) -> int:
    """A whole number on the field's scale; an option label such as ``"5 - High"`` also works."""
    field = ctx.field
    if isinstance(raw, str) and ctx.match == "label":
        found = field.option_by_label(raw)
        if found is not None and found.code is not None:
            raw = found.code
    value = whole_number(raw)
    low, high = _rating_scale(field)
    if not low <= value <= high:
        raise Problem(f"rating {value} is outside the scale of {field.name} ({low}..{high})")
    return value


def timezone_name(ctx: Context, raw: Any) -> str:
    """An IANA zone name; one of the field's options when it has them (ids are the names)."""
    field = ctx.field
    key = text_of(raw, "a time zone")
    if field.options:
        found = field.option_by_id(key) or field.option_by_label(key)
        if found is None:
            raise Problem(
                f"{key!r} is not a time zone of {field.name} "
                f"(options: {_options_text(field, by_id=False)})"
            )
        return found.id
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise Problem(f"{key!r} is not an IANA time zone name (e.g. America/Chicago)") from None
    return key


def team_member_id(ctx: Context, raw: Any) -> str:
    """A team member's UUID."""
    return uuid_of(raw, "team member")


def related_id(ctx: Context, raw: Any) -> str:
    """A related record's UUID, or its identifier (name; e-mail for contacts) when the run
    looked the identifiers up (``ctx.related``): warehouses hold names, not Kizen ids.
    """
    if ctx.related is None or not isinstance(raw, str) or UUID_RE.match(raw.strip()):
        return uuid_of(raw, "related record")
    key = text_of(raw, "a related record")
    found = ctx.related.get(key)
    if found is None:
        raise Problem(
            f"no related record has the identifier {key!r} (a record id, or the name of the "
            "related record; e-mail for contacts)"
        )
    return found


def file_id(ctx: Context, raw: Any) -> str:
    """An uploaded file's UUID."""
    return uuid_of(raw, "file")


def item_texts(ctx: Context, raw: Any) -> list[str]:
    """The text items of a value, as the coercers will read them (split per ``format`` for a
    multi-valued field); blanks dropped. What a run must look up before planning: related
    records' identifiers and tag labels.
    """
    value = plain(raw)
    if is_blank(value):
        return []
    if not ctx.field.is_multi_valued:
        items = [value]
    elif isinstance(value, str):
        try:
            items = _split(ctx, value)
        except Problem:
            return []
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    elif hasattr(value, "tolist"):
        items = list(value.tolist())
    else:
        return []
    out = []
    for item in items:
        item = plain(item)
        if not is_blank(item) and isinstance(item, str | int) and not isinstance(item, bool):
            out.append(str(item).strip())
    return out


def tag_id(ctx: Context, raw: Any) -> str:
    """A dynamic tag's id, by label (case-insensitive) through ``ctx.tags`` or by id."""
    field = ctx.field
    key = text_of(raw, "a tag")
    tags = ctx.tags
    if tags is None:
        if ctx.match == "id":
            return key
        raise Problem(
            f"the dynamic tags of {field.name} are not known, so tag {key!r} cannot be resolved"
        )
    if ctx.match == "id":
        for known in tags.values():
            if known.casefold() == key.casefold():
                return known
        raise Problem(f"{key!r} is not a tag id of {field.name}")
    wanted = key.casefold()
    for label, known in tags.items():
        if label.strip().casefold() == wanted:
            return known
    raise Problem(
        f"tag {key!r} is not a tag of {field.name} (tags: {_listing(sorted(tags))}); "
        "create it in Kizen first, or set create_missing_tags: true on the sync"
    )


def _split(ctx: Context, raw: str) -> list[Any]:
    """The items of a text column per ``format``; ``auto`` tries JSON for ``[...]`` text."""
    if ctx.fmt == "list":
        raise Problem(
            f"expected an array column, got text {show(raw)}; set format: delimited or json "
            "for a text column"
        )
    stripped = raw.strip()
    if ctx.fmt == "json" or (ctx.fmt == "auto" and stripped.startswith("[")):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError as exc:
            if ctx.fmt == "json":
                raise Problem(f"{show(raw)} is not a JSON array ({exc.msg})") from None
        else:
            if not isinstance(parsed, list):
                raise Problem(f"{show(raw)} is JSON but not an array")
            return parsed
    return raw.split(ctx.delimiter)


def ids(ctx: Context, raw: Any, item: ItemCoercer) -> list[str]:
    """Sorted unique ids of a multi-valued field; blank items are dropped, text is trimmed.

    Every bad item is reported, not only the first, so one fix covers the whole value.
    """
    if isinstance(raw, str):
        items = _split(ctx, raw)
    elif isinstance(raw, list | tuple | set | frozenset):
        items = list(raw)
    elif hasattr(raw, "tolist"):  # numpy / pandas arrays from array columns
        items = list(raw.tolist())
    else:
        raise Problem(f"expected several values (an array or text), got {type(raw).__name__}")
    found: set[str] = set()
    problems: list[str] = []
    for entry in items:
        value = plain(entry)
        if is_blank(value):
            continue
        try:
            found.add(item(ctx, value))
        except Problem as exc:
            problems.append(str(exc))
    if problems:
        raise Problem("; ".join(problems))
    return sorted(found)
