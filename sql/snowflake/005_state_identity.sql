-- What a state row's record is matched by, so that state can be checked before any write
-- (kizen_sync/warehouse/integrity.py): identity is the record's identifier (name, or email
-- for contacts) as Kizen's upsert compares it (case-folded), '' when the sync has none;
-- NULL only on rows written before this column existed, until a run fills it in. The
-- indexes answer "which live rows hold this identity / this Kizen id?" without a scan.
-- No indexes here: the warehouse scans columns (and DuckDB keeps indexes in memory).
ALTER TABLE {schema}{prefix}sync_state ADD COLUMN IF NOT EXISTS identity VARCHAR;
