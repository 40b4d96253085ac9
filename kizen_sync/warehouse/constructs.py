"""SQL functions the warehouse code needs, as SQLAlchemy constructs compiled per dialect.

Each construct is declared here once; every dialect module registers how it spells it
(``@compiles(Char, "sqlite")`` in :mod:`.dialects.sqlite`, and so on). A dialect that has no
spelling for a construct fails at compile time with a message naming the dialect, never by
sending SQL the database would misread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["NULL_MARK", "SEPARATOR", "Char", "KeyBucket", "RowHash"]

#: Code point standing for NULL in the canonical text of a row (ASCII record separator).
NULL_MARK = 30
#: Code point joining the canonical values of a row (ASCII unit separator).
SEPARATOR = 31


class Char(FunctionElement[str]):
    """A one-character text constant by code point (``chr(n)`` / SQLite ``char(n)``).

    Control characters are written as function calls so that no invisible byte ever sits in
    the SQL text or in a bound parameter.
    """

    type = Text()
    inherit_cache = True
    name = "kizen_char"


@compiles(Char)
def _char_default(element: Char, compiler: SQLCompiler, **kw: Any) -> str:
    return f"chr({compiler.process(element.clauses, **kw)})"


class KeyBucket(FunctionElement[int]):
    """Hash bucket of a source key: the first 28 bits of ``md5(key)`` modulo ``buckets``.

    :func:`kizen_sync.warehouse.keys.bucket_of` computes the same number in Python.
    """

    type = Integer()
    inherit_cache = True
    name = "kizen_key_bucket"


@compiles(KeyBucket)
def _bucket_default(element: KeyBucket, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa_exc.CompileError(
        f"hash-bucket partitions are not implemented for {compiler.dialect.name}"
    )


class RowHash(FunctionElement[str]):
    """64-bit hash (as text) of a row's canonical values, joined by ``chr(31)``.

    The parts are passed as a flat argument list rather than one long ``a || sep || b``
    chain: SQLAlchemy parenthesises each ``||``, and SQLite's parser overflows its stack on
    the resulting nesting once a sync maps twenty-odd columns. Each dialect chooses its
    fastest native hash of ``concat_ws(chr(31), ...)``.
    """

    type = Text()
    inherit_cache = True
    name = "kizen_row_hash"


@compiles(RowHash)
def _hash_default(element: RowHash, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa_exc.CompileError(f"no row fingerprint is defined for {compiler.dialect.name}")
