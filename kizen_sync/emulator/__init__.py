"""A faithful local Kizen API: records, schema discovery, auth, archive rules and fault knobs.

Use :meth:`Emulator.demo` for the demo business of docs/architecture.md, mount
``emulator.app`` with ``httpx.ASGITransport`` in tests, or :meth:`Emulator.serve` for real
HTTP. Choices made where the Kizen docs leave gaps are listed in ``kizen_sync/emulator/README.md``.
"""

from __future__ import annotations

from kizen_sync.emulator.app import NO_ACCESS_KEY, DroppedConnection
from kizen_sync.emulator.emulator import (
    DEMO_API_KEY,
    DEMO_BUSINESS_ID,
    DEMO_BUSINESS_PATH,
    DEMO_READONLY_KEY,
    DEMO_USER_ID,
    Emulator,
)
from kizen_sync.emulator.knobs import Knobs, RequestLog

__all__ = [
    "DEMO_API_KEY",
    "DEMO_BUSINESS_ID",
    "DEMO_BUSINESS_PATH",
    "DEMO_READONLY_KEY",
    "DEMO_USER_ID",
    "NO_ACCESS_KEY",
    "DroppedConnection",
    "Emulator",
    "Knobs",
    "RequestLog",
]
