"""The values codec of ``sync_state.values_json``: canonical values to JSON text and back.

The planner compares the values a row maps to now with the values last confirmed in Kizen.
JSON alone would turn a ``Decimal('1.50')`` into a float and a date into a string, and the
comparison would then see a change that is not one. So non-JSON types are tagged
(``{"$decimal": "1.50"}``) and come back as equal values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["decode_values", "encode_values", "tag"]


def tag(value: Any) -> Any:
    """A JSON-ready form of ``value`` with its non-JSON types tagged."""
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [tag(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {
            "$set": sorted((tag(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        }
    if isinstance(value, list):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        return {str(k): tag(v) for k, v in value.items()}
    return value


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$uuid": UUID,
    "$tuple": tuple,
    "$set": frozenset,
}


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key in _UNTAG:
            return _UNTAG[key](value)
    return obj


def encode_values(values: Mapping[str, Any]) -> str:
    """JSON text of canonical values that :func:`decode_values` turns back into equal values."""
    return json.dumps(tag(dict(values)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_values(text_value: str | None) -> dict[str, Any]:
    """The values stored by :func:`encode_values` (``{}`` for NULL)."""
    if not text_value:
        return {}
    decoded = json.loads(text_value, object_hook=_untag)
    return dict(decoded) if isinstance(decoded, dict) else {}
