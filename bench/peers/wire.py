"""What a hand-written peer sends: every mapped column as a Kizen field entry, JSON-ready."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bench.fixtures import COLUMNS, OBJECT

__all__ = ["HEADERS", "patch_path", "record_body"]

#: The emulator's demo credentials (docs/architecture.md), as every peer sends them.
HEADERS = {
    "X-API-KEY": "demo-api-key",
    "X-USER-ID": "916dac1b-5640-4268-9324-06132f342488",
    "X-BUSINESS-ID": "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
}


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def record_body(row: dict[str, Any]) -> dict[str, Any]:
    """``{"fields": [...]}`` with all eight mapped columns (the usual "send it all"; a column dlt
    dropped because it was NULL is sent as null, i.e. cleared)."""
    return {
        "fields": [
            {"name": field, "value": _json(row.get(col))} for col, (_, _, field) in COLUMNS.items()
        ]
    }


def patch_path(row: dict[str, Any]) -> str:
    """``/api/records/accounts/{kizen_id}``."""
    return f"/api/records/{OBJECT}/{row['kizen_id']}"
