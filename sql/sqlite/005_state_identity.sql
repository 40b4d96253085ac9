-- What a state row's record is matched by, so that state can be checked before any write
-- (kizen_sync/warehouse/integrity.py): identity is the record's identifier (name, or email
-- for contacts) as Kizen's upsert compares it (case-folded), '' when the sync has none;
-- NULL only on rows written before this column existed, until a run fills it in. The
-- indexes answer "which live rows hold this identity / this Kizen id?" without a scan.
-- (SQLite has no ADD COLUMN IF NOT EXISTS: re-applying this file skips a duplicate column.)
ALTER TABLE {schema}{prefix}sync_state ADD COLUMN identity TEXT;
CREATE INDEX IF NOT EXISTS {schema}{prefix}state_identity_idx ON {prefix}sync_state (sync_name, identity);
CREATE INDEX IF NOT EXISTS {schema}{prefix}state_kizen_id_idx ON {prefix}sync_state (sync_name, kizen_id);
