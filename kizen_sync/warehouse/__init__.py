"""Everything that speaks SQL: the warehouse, its sources, the diff and kizen-sync's tables.

Modules, each with one reason to change:

- :mod:`.engine`: :class:`Warehouse`, the engine and its dialect;
- :mod:`.dialects`: one module per supported warehouse (what differs between them);
- :mod:`.constructs`: the SQL functions compiled per dialect; :mod:`.keys`: source keys;
- :mod:`.source`: a sync's table or query, checked before any SQL is built from it;
- :mod:`.fingerprint`: the canonical row hash; :mod:`.diff`: the anti-join and its stream;
- :mod:`.tables`, :mod:`.sqlfiles`, :mod:`.migrations`: kizen-sync's tables and their DDL;
- :mod:`.state`: state, audit and runs persistence; :mod:`.audit`: audit rows and redaction;
  :mod:`.codec`: the values codec of ``sync_state``;
- :mod:`.failures`: parked failures and the failure listing (totals, groups, filters).
"""

from kizen_sync.warehouse.audit import FORGET, RESOLVE
from kizen_sync.warehouse.codec import decode_values, encode_values
from kizen_sync.warehouse.dialects import supported_names
from kizen_sync.warehouse.diff import ArchiveCounts, ChangeDetector, ChangeTally, DiffCounts
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.failures import FailureListing, Failures, ParkedSummary
from kizen_sync.warehouse.fingerprint import fingerprint_columns, mapping_signature
from kizen_sync.warehouse.keys import KEY_SEPARATOR, bucket_of, decode_key, encode_key
from kizen_sync.warehouse.source import Source
from kizen_sync.warehouse.state import StateStore
from kizen_sync.warehouse.tables import StateTables

__all__ = [
    "FORGET",
    "KEY_SEPARATOR",
    "RESOLVE",
    "ArchiveCounts",
    "ChangeDetector",
    "ChangeTally",
    "DiffCounts",
    "FailureListing",
    "Failures",
    "ParkedSummary",
    "Source",
    "StateStore",
    "StateTables",
    "Warehouse",
    "bucket_of",
    "decode_key",
    "decode_values",
    "encode_key",
    "encode_values",
    "fingerprint_columns",
    "mapping_signature",
    "supported_names",
]
