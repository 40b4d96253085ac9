"""Shared pieces of the mapping package: the coercion context, problems, NULL detection.

Coercers raise :class:`Problem` with a sentence about the *value*; the public functions in
:mod:`kizen_sync.mapping` add the column and field (``MappingError``) or say that Kizen sent
it (``ValueError`` for reads). Keeping the two apart lets the same normalisation serve both
the warehouse side and the read side, so both arrive at the very same canonical form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from kizen_sync.schema import FieldSchema

__all__ = ["UUID_RE", "Context", "Problem", "is_blank", "plain", "show", "text_of", "uuid_of"]

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

#: Type names of pandas' missing-value singletons; matched by name so that this pure module
#: does not import pandas (``pd.NaT`` even passes ``isinstance(x, datetime)``).
_PANDAS_MISSING = frozenset({"NaTType", "NAType"})


def _numpy_type(raw: Any) -> str | None:
    """The numpy type name of ``raw`` (``"int64"``, ``"datetime64"``), else None.

    Recognised by module rather than imported: values from a DataFrame carry numpy scalars,
    but the library itself does not need numpy to understand them.
    """
    kind = type(raw)
    return kind.__name__ if kind.__module__ == "numpy" else None


def _is_nat(raw: Any) -> bool:
    return _numpy_type(raw) == "datetime64" and str(raw) == "NaT"


class Problem(Exception):
    """A value that cannot become a Kizen value; the message names the value, not the column."""


@dataclass(frozen=True)
class Context:
    """How to read one column: the options of its ``FieldMapping`` that change coercion.

    Attributes:
        field: the target field.
        match: options (and tags) given by ``"label"`` or by ``"id"``.
        timezone: IANA zone of naive datetimes.
        fmt: how a text column holds several values (``auto``/``list``/``delimited``/``json``).
        delimiter: separator of ``delimited`` text.
        tags: dynamic tags of the field, label -> id (``None`` when not loaded).
        related: for a relationship field, the related records' identifiers (name, or
            e-mail for contacts) -> record id, as looked up for this run (``None``: ids only).
    """

    field: FieldSchema
    match: str = "label"
    timezone: str = "UTC"
    fmt: str = "auto"
    delimiter: str = ","
    tags: Mapping[str, str] | None = None
    related: Mapping[str, str] | None = None


def plain(raw: Any) -> Any:
    """Turn numpy scalars into the Python values a DB-API driver would have returned.

    ``datetime64`` is cut to microseconds first: ``.item()`` of a nanosecond value is an int.
    """
    kind = _numpy_type(raw)
    if kind == "datetime64":
        return None if _is_nat(raw) else raw.astype("datetime64[us]").item()
    if kind is not None and hasattr(raw, "item"):
        return raw.item()
    if isinstance(raw, datetime) and hasattr(raw, "to_pydatetime"):
        # pandas Timestamp: Kizen keeps microseconds, so nanoseconds are dropped on purpose.
        return raw.to_pydatetime(warn=False)
    return raw


def is_blank(raw: Any, *, keep_whitespace: bool = False) -> bool:
    """True for every spelling of "no value" a warehouse driver or DataFrame produces.

    None, float NaN (pandas' missing marker), NaT, ``pd.NA`` and the empty string are blank.
    Kizen omits blank fields from reads and cannot hold ``""`` apart from null, so treating
    ``""`` as NULL avoids a difference the CRM could never reflect. Whitespace-only text is
    blank too, except for text fields (``keep_whitespace``), whose values are kept verbatim.
    """
    if raw is None or type(raw).__name__ in _PANDAS_MISSING:
        return True
    if isinstance(raw, float) and math.isnan(raw):
        return True
    if _is_nat(raw):
        return True
    if isinstance(raw, str):
        return raw == "" if keep_whitespace else not raw.strip()
    return False


def show(raw: Any) -> str:
    """A short, unambiguous rendering of a source value for error messages."""
    if isinstance(raw, str):
        text = raw if len(raw) <= 60 else raw[:57] + "..."
        return repr(text)
    if isinstance(raw, Decimal | int | float):
        return str(raw)
    if isinstance(raw, datetime):
        return raw.isoformat(sep=" ")
    if isinstance(raw, date):
        return raw.isoformat()
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def text_of(raw: Any, what: str) -> str:
    """A stripped string from text, or from a number some warehouses use for codes and ids."""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise Problem(f"expected {what} as text, got {type(raw).__name__} {show(raw)}")


def uuid_of(raw: Any, what: str) -> str:
    """A lower-case UUID string; Kizen ids are UUIDs and compare case-insensitively."""
    text = str(raw).strip() if isinstance(raw, str | UUID) else ""
    if not UUID_RE.match(text):
        raise Problem(
            f"{show(raw)} is not a {what} id (a UUID such as "
            "'7f1e2d3c-0000-4000-8000-000000000001')"
        )
    return text.lower()
