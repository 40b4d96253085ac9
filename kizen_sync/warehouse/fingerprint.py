"""The row fingerprint: what a row's mapped values hash to, computed inside the warehouse.

Only new, changed and deleted rows ever leave the warehouse. Each row's fingerprint is a
64-bit hash of a canonical encoding of its fingerprinted columns, computed in the database:

* the columns are the mapped columns plus the record-id and soft-delete columns (a change in
  either matters), sorted by name so that reordering the sync file changes nothing;
* the first part is the sync's mapping signature (:func:`mapping_signature`): editing how
  columns map to fields (another field, format, NULL handling, option matching...) moves
  every fingerprint, so the next run re-plans every row against its last synced values and
  sends what the new mapping changes, instead of waiting for each row to change;
* each value is rendered in one fixed form per column type, so that the same data always
  gives the same text whatever the driver or session settings (each dialect's
  ``canonical_text`` says how: epochs for times, trimmed numerics, sorted JSON ...);
* text is length-prefixed (``length(v) || ':' || v``), NULL is a lone RS (``chr(30)``) and
  values are joined with US (``chr(31)``): the types that are not length-prefixed never render
  an RS or a US, and a length-prefixed value is read by its length, so NULL, ``''``,
  ``'NULL'`` and values containing the separator all encode differently;
* the hash is the warehouse's own fastest 64-bit hash (``hashtextextended`` on PostgreSQL,
  ``hash`` on DuckDB, ``HASH`` on Snowflake, ``FARM_FINGERPRINT`` on BigQuery, ``FNV_HASH``
  on Redshift, blake2b in one Python call per row on SQLite). For N rows the chance
  that any changed row keeps its 64-bit fingerprint is about N / 2**64 (5e-14 at 1M rows).

Changing the encoding or the hash moves every fingerprint once: the next run reports every
synced row CHANGED, the planner finds no Kizen value changed and plans NOOP state refreshes
(no request), and the run after that is quiet again. Why each form was chosen, with the
measurements, is in ``bench/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from kizen_sync.config import SyncConfig
from kizen_sync.warehouse.source import Source

__all__ = ["fingerprint_columns", "fingerprint_expr", "mapping_signature"]


def mapping_signature(sync: SyncConfig) -> str:
    """A short hash of everything in the sync that decides what a row is sent as.

    The object, the identity and each field mapping without ``sensitive`` (which only decides
    what the audit keeps). Names, descriptions, schedules, guards and partitions are left
    out: changing them must not re-plan the table.
    """
    spec: dict[str, Any] = {
        "object": sync.object,
        "identity": sync.identity.model_dump(mode="json"),
        "fields": [f.model_dump(mode="json", exclude={"sensitive"}) for f in sync.fields],
    }
    if sync.create_missing_tags:  # turning it on sends the rows that failed on a tag again
        spec["create_missing_tags"] = True
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def fingerprint_columns(sync: SyncConfig) -> list[str]:
    """The columns a row's fingerprint covers, sorted by name."""
    names = set(sync.mapped_columns)
    names.update(c for c in (sync.identity.record_id_column, sync.source.soft_delete_column) if c)
    return sorted(names)


def fingerprint_expr(source: Source) -> ColumnElement[str]:
    """The SQL fingerprint of a row of ``source`` (64-bit hash text of its canonical form)."""
    sync = source.sync
    columns: list[ColumnElement[Any]] = [source.column(c) for c in fingerprint_columns(sync)]
    dialect = source.warehouse.sql_dialect
    return dialect.fingerprint(dialect.signature(mapping_signature(sync)), columns)
