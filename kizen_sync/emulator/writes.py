"""Parsing and applying a request's ``fields`` entries, with Kizen's positional errors.

A write is all or nothing: every entry is validated first, errors are collected at the
position of the entry that caused them (``{}`` for fine entries), and only a fully valid
request is applied, on a copy of the record's values, so a rejected write changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kizen_sync.emulator.business import FieldDef, ObjectDef
from kizen_sync.emulator.values import Resolver, ValueRejected, is_blank, validate_value

__all__ = ["ApiError", "Op", "apply_ops", "field_errors", "parse_entries"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VALUE_KEYS = ("value", "add_values", "remove_values")
_SYSTEM = frozenset({"created", "updated"})


class ApiError(Exception):
    """An error response: HTTP status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def field_errors(
    count: int, errors: dict[int, dict[str, list[str]]], non_field: list[str] | None = None
) -> ApiError:
    """A 400 in the ErrorResponse shape, positional over ``count`` request entries."""
    return ApiError(
        400,
        {
            "non_field_errors": list(non_field or []),
            "fields": [errors.get(i, {}) for i in range(count)],
        },
    )


def _entry_error(key: str, message: str, code: str) -> dict[str, list[str]]:
    return {key: [message], "code": [code]}


@dataclass(frozen=True)
class Op:
    """One validated entry: which field, which operation, the stored-form value."""

    index: int
    field: FieldDef
    kind: str
    value: Any


def _address(obj: ObjectDef, entry: dict[str, Any]) -> FieldDef:
    has_name, has_id = entry.get("name") is not None, entry.get("id") is not None
    if has_name == has_id:
        raise _Bad("name", "Provide exactly one of `name` or `id`.", "invalid")
    if has_id:
        ref = entry["id"]
        if not isinstance(ref, str) or not _UUID.match(ref):
            raise _Bad("id", "Must be a valid UUID.", "invalid")
        found = obj.by_id.get(ref.lower())
        if found is None:
            raise _Bad("id", f"Field with id '{ref}' does not exist.", "does_not_exist")
        return found
    ref = entry["name"]
    found = obj.by_name.get(ref) if isinstance(ref, str) else None
    if found is None:
        raise _Bad("name", f"Field with name '{ref}' does not exist.", "does_not_exist")
    return found


class _Bad(Exception):
    def __init__(self, key: str, message: str, code: str) -> None:
        super().__init__(message)
        self.error = _entry_error(key, message, code)


def _parse_one(obj: ObjectDef, index: int, entry: Any, ctx: Resolver) -> Op:
    if not isinstance(entry, dict):
        raise _Bad("name", "Invalid entry: expected an object.", "invalid")
    f = _address(obj, entry)
    kinds = [k for k in _VALUE_KEYS if k in entry and (k == "value" or entry[k] is not None)]
    if len(kinds) != 1:
        raise _Bad(
            "value", "Provide exactly one of `value`, `add_values`, `remove_values`.", "invalid"
        )
    kind = kinds[0]
    if f.spec.get("is_read_only") or f.name in _SYSTEM:
        raise _Bad(kind, f"Field '{f.name}' is read-only.", "forbidden_field_write")
    if f is obj.stage_field:
        raise _Bad(
            kind,
            "The stage of a pipeline record changes through PATCH "
            "/api/records/{object}/{id}/move with a stage_id, not through fields.",
            "invalid",
        )
    raw = entry[kind]
    if kind != "value":
        if not f.multi:
            raise _Bad(
                kind, f"Field '{f.name}' does not allow multiple values; use `value`.", "invalid"
            )
        try:
            return Op(index, f, kind, validate_value(f, raw, ctx))
        except ValueRejected as exc:
            raise _Bad(kind, exc.message, exc.code) from None
    if raw is None or (is_blank(raw) and raw != ""):
        if not f.multi and raw is None and not f.spec.get("allows_nulls", True):
            raise _Bad("value", "This field may not be null.", "null")
        if f.spec.get("is_required"):
            raise _Bad("value", "This field is required.", "required")
        return Op(index, f, kind, None)
    if raw == "" and f.field_type in ("text", "longtext", "wysiwyg"):
        if f.spec.get("is_required") or not f.spec.get("allows_empty", True):
            raise _Bad("value", "This field may not be blank.", "blank")
        return Op(index, f, kind, None)
    try:
        return Op(index, f, kind, validate_value(f, raw, ctx))
    except ValueRejected as exc:
        raise _Bad("value", exc.message, exc.code) from None


def parse_entries(obj: ObjectDef, entries: Any, ctx: Resolver) -> list[Op]:
    """Validate every entry; raise one positional 400 listing all failing entries."""
    if not isinstance(entries, list):
        raise ApiError(
            400, {"non_field_errors": ["`fields` must be a list of field entries."], "fields": []}
        )
    ops: list[Op] = []
    errors: dict[int, dict[str, list[str]]] = {}
    for i, entry in enumerate(entries):
        try:
            ops.append(_parse_one(obj, i, entry, ctx))
        except _Bad as bad:
            errors[i] = bad.error
    if errors:
        raise field_errors(len(entries), errors)
    return ops


def apply_ops(values: dict[str, Any], ops: list[Op]) -> dict[str, Any]:
    """New values after applying the ops in request order (the input is not modified)."""
    out = dict(values)
    for op in ops:
        fid = op.field.id
        if op.kind == "value":
            if op.value is None:
                out.pop(fid, None)
            else:
                out[fid] = op.value
            continue
        current: list[str] = list(out.get(fid) or [])
        if op.kind == "add_values":
            merged = list(dict.fromkeys([*current, *op.value]))
        else:
            gone = set(op.value)
            merged = [v for v in current if v not in gone]
        if merged:
            out[fid] = merged
        else:
            out.pop(fid, None)
    return out
