"""Pure mapping: warehouse value -> canonical value -> Kizen wire value, per field type.

The *canonical* value is the one ``sync_state.values_json`` stores and the planner compares:
JSON-native, one spelling per meaning (``1.50`` and ``1.5`` are both ``"1.5"``; a list of ids
is sorted and unique; datetimes are UTC with microseconds). Comparing canonical values is
what lets a formatting change in SQL plan no request at all.

- :func:`coerce` turns what a driver or DataFrame returns into the canonical value, or raises
  :class:`~kizen_sync.errors.MappingError` naming the column, the field and the problem.
- :func:`to_wire` renders a canonical value as the ``value`` of a request entry
  (docs/architecture.md, "Wire decisions").
- :func:`canonical_from_read` normalises what Kizen returns on GET to the same canonical form,
  so mirror mode and tests can compare Kizen with the source.
- :func:`hash_values` is the keyed hash the audit keeps instead of sensitive values (the
  only implementation: the state store calls it).
- :mod:`kizen_sync.mapping.labels` turns option and tag ids back into labels for display.

Every NULL spelling (None, NaN, NaT, ``pd.NA``, ``""``) coerces to ``None``; what NULL means
(clear the field or leave it) is decided by the planner from ``FieldMapping.null``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from kizen_sync.config import FieldMapping
from kizen_sync.errors import MappingError
from kizen_sync.mapping import references, scalars
from kizen_sync.mapping.common import UUID_RE, Context, Problem, is_blank, plain, show, text_of
from kizen_sync.schema import OPTION_TYPES, FieldSchema

__all__ = [
    "canonical_from_read",
    "coerce",
    "hash_values",
    "item_texts",
    "record_id",
    "to_wire",
]

_Coercer = Callable[[Context, Any], Any]

_SINGLE: dict[str, _Coercer] = {
    "text": scalars.text,
    "longtext": scalars.longtext,
    "wysiwyg": scalars.longtext,
    "email": scalars.email,
    "phonenumber": scalars.phone,
    "integer": scalars.integer,
    "decimal": scalars.decimal,
    "money": scalars.money,
    "date": scalars.date_value,
    "datetime": scalars.datetime_value,
    "checkbox": scalars.checkbox,
    "rating": references.rating,
    "timezone": references.timezone_name,
    "team_selector": references.team_member_id,
    "relationship": references.related_id,
    "files": references.file_id,
    **dict.fromkeys(OPTION_TYPES, references.option_id),
}

_ITEMS: dict[str, references.ItemCoercer] = {
    "checkboxes": references.option_id,
    "dynamictags": references.tag_id,
    "relationship": references.related_id,
    "files": references.file_id,
}

#: Types whose text is kept verbatim, so whitespace-only text is a value, not a NULL.
_TEXT_TYPES = frozenset({"text", "longtext", "wysiwyg"})
#: Types whose canonical value is an id Kizen sends back inside ``{"id": ...}``.
_UUID_TYPES = frozenset({"team_selector", "relationship", "files"})
_REFERENCE_TYPES = OPTION_TYPES | _UUID_TYPES


def _canonical(ctx: Context, raw: Any) -> Any:
    field = ctx.field
    value = plain(raw)
    if is_blank(value, keep_whitespace=field.field_type in _TEXT_TYPES):
        return None
    if field.is_multi_valued:
        return references.ids(ctx, value, _ITEMS[field.field_type])
    coercer = _SINGLE.get(field.field_type)
    if coercer is None:
        raise Problem(f"field type {field.field_type!r} is not supported")
    if isinstance(value, list | tuple | set | frozenset):
        raise Problem(f"{field.name} holds one value, got a list of {len(value)}")
    return coercer(ctx, value)


def item_texts(field: FieldSchema, spec: FieldMapping, raw: Any) -> list[str]:
    """The text items of ``raw`` as :func:`coerce` will read them (per ``format`` for a
    multi-valued field): the identifiers and labels a run looks up before planning.
    """
    ctx = Context(field=field, fmt=spec.format, delimiter=spec.delimiter)
    return references.item_texts(ctx, raw)


def coerce(
    field: FieldSchema,
    spec: FieldMapping,
    raw: Any,
    *,
    tags: Mapping[str, str] | None = None,
    related: Mapping[str, str] | None = None,
) -> Any:
    """The canonical value of ``raw`` for ``field``; ``None`` for any NULL spelling.

    Args:
        field: the Kizen field the column feeds.
        spec: the column's mapping (label or id matching, time zone of naive datetimes,
            how a text column holds several values).
        raw: the value as the warehouse driver or a DataFrame returned it.
        tags: for dynamic-tag fields, the field's tags as label -> id.
        related: for relationship fields, identifier (name; e-mail for contacts) -> record
            id of the related records this run looked up; without it only ids are accepted.

    Raises:
        MappingError: the value cannot become a value of this field; ``problem`` says why in
            terms of the value (the message adds the column and the field).
    """
    ctx = Context(
        field=field,
        match=spec.match,
        timezone=spec.timezone,
        fmt=spec.format,
        delimiter=spec.delimiter,
        tags=tags,
        related=related,
    )
    try:
        return _canonical(ctx, raw)
    except Problem as exc:
        raise MappingError(column=spec.column, field=field.name, problem=str(exc)) from None


def record_id(column: str, raw: Any) -> str | None:
    """The Kizen record UUID a source column holds (lower case), ``None`` when NULL.

    Raises:
        MappingError: the value is not a UUID; ``field`` is ``"id"`` (the record's id).
    """
    value = plain(raw)
    if is_blank(value):
        return None
    text = str(value).strip() if isinstance(value, str | UUID) else ""
    if not UUID_RE.match(text):
        raise MappingError(
            column=column,
            field="id",
            problem=f"{show(value)} is not a Kizen record id (a UUID)",
        )
    return text.lower()


def _json_number(canonical: str) -> int | float:
    value = Decimal(canonical)
    return int(value) if value == value.to_integral_value() else float(value)


def to_wire(field: FieldSchema, canonical: Any) -> Any:
    """The ``value`` to send for a canonical value (``None`` clears the field).

    Each shape follows the evidence (docs/architecture.md, "Wire shapes"): options and
    to-one relationships as ``{"id": ...}`` (confirmed live for dropdowns); a rating as its
    option (ratings are option-backed, live); a team member as the bare employee id (AE;
    no source wraps it); files as an array of file ids even for a single-file field (AE);
    multi-valued fields as lists of bare ids; decimals and money as JSON numbers, already
    rounded to the field's places; everything else bare.
    """
    if canonical is None:
        return None
    kind = field.field_type
    if field.is_multi_valued:
        return list(canonical)
    if kind == "files":
        return [canonical]
    if kind == "rating":
        option = next((o for o in field.options or () if o.code == str(canonical)), None)
        return {"id": option.id} if option is not None else canonical
    if kind in OPTION_TYPES or kind == "relationship":
        return {"id": canonical}
    if kind in ("decimal", "money"):
        return _json_number(canonical)
    return canonical


def _unwrap(value: Any) -> Any:
    """Kizen's read envelopes are not uniform: peel a lone ``{"value": ...}``."""
    while isinstance(value, dict) and set(value) == {"value"}:
        value = value["value"]
    return value


def _ref(value: Any, field: FieldSchema) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise Problem(f"expected an id or an object with an id, got {show(value)}")
    return value.lower() if field.field_type in _UUID_TYPES else value


def _single_file(value: Any, field: FieldSchema) -> str:
    """A single-file field's id from any of the read shapes it may have (unknown: a list
    of file objects, one file object, or bare ids).
    """
    items = value if isinstance(value, list) else [value]
    ids = sorted({_ref(item, field) for item in items})
    if len(ids) != 1:
        raise Problem(f"a single-file field holds {len(ids)} files")
    return ids[0]


def _rating_read(value: Any, field: FieldSchema) -> int:
    """A rating's number from its option (``{id, code, name}``, or the option id alone) or
    from a bare number: the read shape is unknown, ratings are option-backed (live).
    """
    if isinstance(value, dict):
        code = value.get("code")
        if code is None and isinstance(value.get("id"), str):
            option = field.option_by_id(value["id"])
            code = option.code if option is not None else None
        value = code if code is not None else value.get("name")
    elif isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        option = field.option_by_id(value) or field.option_by_label(value)
        if option is not None and option.code is not None:
            value = option.code
    return scalars.whole_number(value)


def canonical_from_read(field: FieldSchema, read_value: Any) -> Any:
    """Normalise a value as Kizen returns it on GET to the canonical form of :func:`coerce`.

    Accepts the documented read shapes (options ``{id, code, name}``, money ``{amount, ...}``,
    team members and related records as objects with an ``id``, lists of those, decimals as
    numbers or strings) and, for a summarized to-many relationship that the caller paged
    through ``field-values``, a plain list of ids. Ids are not checked against the schema:
    Kizen is the authority on what it holds.

    Returns:
        The canonical value, or ``None`` when the field is blank or absent.

    Raises:
        ValueError: the read value has a shape this field type never has (e.g. a
            ``value_summary`` that should have been paged).
    """
    value = _unwrap(read_value)
    if is_blank(value) or value == []:
        return None
    kind = field.field_type
    read_ctx = Context(field=field, match="id")
    try:
        if field.is_multi_valued:
            if kind == "files" and not isinstance(value, list):
                value = [value]  # a lone file where a list was expected: read shape unknown
            if not isinstance(value, list):
                raise Problem(
                    f"expected a list, got {show(value)} (page a summarized relationship "
                    "through field-values)"
                )
            return sorted({_ref(item, field) for item in value})
        if kind == "files":
            return _single_file(value, field)
        if kind == "rating":
            return _rating_read(value, field)
        if kind in _REFERENCE_TYPES:
            return _ref(value, field)
        if kind == "money" and isinstance(value, dict):
            value = value.get("amount")
        elif kind == "timezone" and isinstance(value, dict):
            value = value.get("id")
        if kind == "timezone":
            return text_of(value, "a time zone")
        return _canonical(read_ctx, value)
    except Problem as exc:
        raise ValueError(
            f"Kizen returned {show(read_value)} for {field.name} ({kind}): {exc}"
        ) from None


def hash_values(values: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of ``values``.

    The audit stores this instead of sensitive values: it proves whether two runs sent the
    same values without revealing them. It is keyed because an unkeyed hash of an email or
    phone number is reversed by hashing a dictionary of candidates.

    Raises:
        ValueError: ``key`` is empty.
        TypeError: a value is not JSON-native (canonical values always are).
    """
    if not key:
        raise ValueError("hash_values needs a non-empty key; an unkeyed hash is reversible")
    payload = json.dumps(
        dict(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()
