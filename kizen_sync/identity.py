"""When two identifiers name one Kizen record.

Kizen's upsert matches its identifier (``name``, or ``email`` for contacts) case-insensitively
(Django's ``__iexact``, as Kizen's own CLI notes), while lookup is exact. Two source rows whose
identifiers differ only in case therefore write the same record through an upsert, and the
connector must treat them as one identity: that is :func:`identity_key`. Whitespace is kept,
as ``__iexact`` keeps it.
"""

from __future__ import annotations

__all__ = ["identity_key"]


def identity_key(identifier: str | None) -> str:
    """The form under which Kizen's upsert matches ``identifier`` ("" for none)."""
    return identifier.casefold() if identifier else ""
