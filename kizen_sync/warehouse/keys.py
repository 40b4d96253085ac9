"""Source keys: the text form of a row's primary key, and its hash bucket.

Source keys are text so that one ``sync_state`` table serves every source, whatever its key
types. A single-column key is ``CAST(col AS TEXT)`` (an integer 42 is ``"42"``); a composite
key joins its columns' text forms with ``chr(31)`` in the configured order. The same forms are
computed in SQL (to join with ``sync_state``, see :meth:`Source.key_expr`) and in Python here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = ["KEY_SEPARATOR", "bucket_of", "decode_key", "encode_key"]

#: Joins the parts of a composite source key (ASCII unit separator).
KEY_SEPARATOR = "\x1f"


def encode_key(values: Sequence[Any]) -> str:
    """The source key of a row from its primary-key values, in configured column order.

    Matches the SQL ``CAST(col AS TEXT)`` for integers, text, UUIDs and decimals; booleans
    are encoded as ``true``/``false`` (PostgreSQL's text form).
    """
    parts = []
    for value in values:
        if value is None:
            raise ValueError("a source key part is NULL")
        parts.append(("true" if value else "false") if isinstance(value, bool) else str(value))
    return KEY_SEPARATOR.join(parts)


def decode_key(key: str) -> list[str]:
    """The text form of each primary-key column, in configured order."""
    return key.split(KEY_SEPARATOR)


def bucket_of(key: str, buckets: int) -> int:
    """The hash bucket of ``key``: the first 28 bits of ``md5(key)`` modulo ``buckets``.

    :class:`~kizen_sync.warehouse.constructs.KeyBucket` computes the same number in SQL, so
    that a bucket partition selects the same keys on the source side and the state side.
    """
    return (
        int(hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:7], 16) % buckets
    )
