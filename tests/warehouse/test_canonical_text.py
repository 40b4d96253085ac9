"""The same value has the same canonical text on every warehouse (where its types allow).

A row's fingerprint is a hash of the canonical text of its values; the hash is each
warehouse's own, but the text must not depend on the warehouse or its driver. Each value is
cast to a SQL type in the warehouse itself and rendered by that warehouse's dialect.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Double,
    Integer,
    Numeric,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.types import TypeEngine

from kizen_sync.warehouse.constructs import NULL_MARK, Char

# (value, SQL type, canonical text); SQLite keeps values by storage class, so it is held to
# the cases marked True (numbers, ASCII text, NULL).
CASES: list[tuple[Any, TypeEngine[Any], str, bool]] = [
    (42, Integer(), "42", True),
    (-7, Integer(), "-7", True),
    (0.1, Double(), "0.1", True),
    (2.0, Double(), "2", True),
    (-3.25, Double(), "-3.25", True),
    (123456789012345.0, Double(), "123456789012345", True),
    (1e15, Double(), "1e+15", False),
    (1.5e15, Double(), "1.5e+15", False),
    (1e20, Double(), "1e+20", True),
    (1.5e-07, Double(), "1.5e-07", True),
    (0.0001, Double(), "0.0001", True),
    (Decimal("1.50"), Numeric(10, 2), "1.5", False),
    (Decimal("2.00"), Numeric(10, 2), "2", False),
    (Decimal("-0.50"), Numeric(10, 2), "-0.5", False),
    (Decimal("120"), Numeric(10, 0), "120", False),
    (True, Boolean(), "t", False),
    (False, Boolean(), "f", False),
    (datetime(2024, 1, 1, 8, 0, tzinfo=UTC), DateTime(timezone=True), "1704096000.000000", False),
    (datetime(2024, 1, 1, 10, 0, 0, 123456), DateTime(), "1704103200.123456", False),
    (datetime(1969, 12, 31, 23, 59, 59, 500000), DateTime(), "-0.500000", False),
    (date(2024, 1, 2), Date(), "1704153600", False),
    ("hello", Text(), "5:hello", True),
    ("", Text(), "0:", True),
    ("a\x1fb", Text(), "3:a\x1fb", True),
    ("é", Text(), "2:é", False),  # bytes; SQLite counts code points
    (None, Text(), chr(NULL_MARK), True),
    (None, Integer(), chr(NULL_MARK), True),
]


@pytest.mark.parametrize(("value", "kind", "expected", "on_sqlite"), CASES, ids=repr)
def test_canonical_text_is_the_same_on_every_warehouse(
    any_db: Any, value: Any, kind: TypeEngine[Any], expected: str, on_sqlite: bool
) -> None:
    db = any_db
    if db.dialect == "sqlite" and not on_sqlite:
        pytest.skip("SQLite renders values by storage class, not by column type")
    if db.dialect == "snowflake" and expected.endswith("e+15"):
        pytest.skip("fakesnow prints floats from 1e15 to 1e16 in a form of its own")
    # The value written into the SQL (literal_execute): fakesnow miscounts a bound parameter
    # that the canonical form reads several times.
    typed = cast(bindparam("v", value, type_=kind, literal_execute=True), kind)
    with db.warehouse.connect() as conn:  # connected first: PostgreSQL's form reads its version
        rendered = func.coalesce(db.warehouse.sql_dialect.canonical_text(typed), Char(NULL_MARK))
        assert conn.execute(select(rendered)).scalar_one() == expected
