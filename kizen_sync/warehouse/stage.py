"""A pandas DataFrame staged into the warehouse, so it syncs like any table.

A sync whose ``source.dataframe`` names a Dagster asset gets that asset's DataFrame on every
run; :func:`stage_frame` writes it to the sync's ``source.table`` (replacing the previous
frame, in one transaction) and from there on nothing is special: the fingerprint and the
anti-join against ``sync_state`` run in the warehouse, only changed rows are planned, rows
missing from the frame are archived, and the mass-archive guard stops a run whose frame came
out half empty. The frame is checked first, so a bad one never replaces a good stage: column
names must be plain identifiers, every column the sync reads must be there, and the primary
key must be non-NULL and unique (the error names the offending keys).
"""

from __future__ import annotations

import pandas as pd

from kizen_sync.config import IDENTIFIER_RE, SyncConfig
from kizen_sync.errors import SourceError
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.keys import encode_key

__all__ = ["stage_frame"]

#: Rows per INSERT batch when writing the frame.
CHUNK_ROWS = 5000
_EXAMPLES = 5


def _needed_columns(sync: SyncConfig) -> list[str]:
    source, identity = sync.source, sync.identity
    names = [*source.primary_key, *sync.mapped_columns]
    for extra in (identity.record_id_column, source.cursor_column, source.soft_delete_column):
        if extra is not None:
            names.append(extra)
    return list(dict.fromkeys(names))


def _error(sync: SyncConfig, message: str, **context: object) -> SourceError:
    return SourceError(
        f"sync {sync.name!r}: source.dataframe {sync.source.dataframe!r}: {message}",
        sync=sync.name,
        key="source.dataframe",
        **context,
    )


def _check(sync: SyncConfig, frame: pd.DataFrame) -> None:
    bad = [str(c) for c in frame.columns if not IDENTIFIER_RE.match(str(c))]
    if bad:
        raise _error(sync, f"column names must be plain identifiers: {bad}", columns=bad)
    missing = [c for c in _needed_columns(sync) if c not in frame.columns]
    if missing:
        raise _error(
            sync,
            f"the frame has no column {', '.join(map(repr, missing))} (it has: "
            f"{', '.join(map(str, frame.columns))})",
            columns=missing,
        )
    key = sync.source.primary_key
    nulls = frame[frame[key].isna().any(axis=1)]
    if len(nulls):
        raise _error(
            sync,
            f"primary key {key} is NULL in {len(nulls)} row(s), e.g. rows "
            f"{list(nulls.index[:_EXAMPLES])}",
        )
    dupes = frame[frame.duplicated(subset=key, keep=False)]
    if len(dupes):
        shown = sorted({encode_key(list(r)) for r in dupes[key].itertuples(index=False)})
        raise _error(
            sync,
            f"primary key {key} is not unique, e.g. {shown[:_EXAMPLES]}",
            examples=shown[:_EXAMPLES],
        )


def stage_frame(warehouse: Warehouse, sync: SyncConfig, frame: pd.DataFrame) -> int:
    """Check ``frame`` and replace the sync's staging table with it, in one transaction.

    Returns:
        The number of rows staged.

    Raises:
        SourceError: the sync has no ``source.dataframe``, or the frame is unfit (a column
            name, a missing column, a NULL or duplicate key), naming what is wrong; the
            previous stage is then left as it was.
    """
    table = sync.source.table
    if sync.source.dataframe is None or table is None:
        raise SourceError(f"sync {sync.name!r} has no source.dataframe", sync=sync.name)
    _check(sync, frame)
    schema, _, name = table.rpartition(".")
    with warehouse.engine.begin() as conn:
        frame.to_sql(
            name,
            conn,
            schema=schema or None,
            if_exists="replace",
            index=False,
            chunksize=CHUNK_ROWS,
        )
    return len(frame)
