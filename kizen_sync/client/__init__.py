"""Kizen API client: :class:`KizenClient` (async; the engine drives it from its own loop).

Paced (token bucket + in-flight cap, optional AIMD), retried with tenacity (429, 5xx, dropped
connections; 4xx never), classified into :mod:`kizen_sync.errors`, and observable through
``client.stats`` and :func:`capture_attempts`.
"""

from __future__ import annotations

from kizen_sync.client.attempts import AttemptInfo, ClientStats, capture_attempts
from kizen_sync.client.client import Entry, KizenClient
from kizen_sync.client.models import (
    FieldValue,
    FieldValueItem,
    ObjectSummary,
    Page,
    Record,
    Tag,
    UpsertAction,
    UpsertResult,
)
from kizen_sync.settings import DEFAULT_BASE_URL, ClientSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "AttemptInfo",
    "ClientSettings",
    "ClientStats",
    "Entry",
    "FieldValue",
    "FieldValueItem",
    "KizenClient",
    "ObjectSummary",
    "Page",
    "Record",
    "Tag",
    "UpsertAction",
    "UpsertResult",
    "capture_attempts",
]
