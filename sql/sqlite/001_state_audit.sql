-- kizen-sync state, audit and run tables (SQLite).
-- {schema} and {prefix} are substituted only after they were validated as identifiers.
-- Timestamps are UTC text "YYYY-MM-DD HH:MM:SS.ffffff".

-- The last state Kizen confirmed per source key. values_json holds the synced values (the
-- data already lives in this warehouse); archived rows keep fingerprint NULL so that a
-- reappearing source row is planned as a restore.
CREATE TABLE IF NOT EXISTS {schema}{prefix}sync_state (
    sync_name   TEXT NOT NULL,
    source_key  TEXT NOT NULL,
    kizen_id    TEXT,
    fingerprint TEXT,
    values_json TEXT NOT NULL DEFAULT '{}',
    archived    INTEGER NOT NULL DEFAULT 0,
    run_id      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (sync_name, source_key)
);

-- One row per HTTP attempt (attempt 0: nothing was sent, e.g. a mapping failure).
-- operation: create / update / archive / noop / fail, or forget (state row dropped, no request).
-- changed_fields: JSON {field API name: written value}; the names are the contract, values of
--   non-sensitive fields are kept for debugging only, sensitive ones read "[redacted]".
-- error_message / field_errors ({field: [message, ...]}): problems of sensitive fields are
--   withheld and any echo of a sensitive value is "[redacted]".
-- values_hash: HMAC-SHA256 of the record's values (keyed outside the warehouse), never values.
CREATE TABLE IF NOT EXISTS {schema}{prefix}audit (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    sync_name      TEXT NOT NULL,
    partition_key  TEXT,
    source_key     TEXT NOT NULL,
    kizen_id       TEXT,
    operation      TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    http_status    INTEGER,
    error_class    TEXT,
    error_message  TEXT,
    field_errors   TEXT,
    changed_fields TEXT,
    values_hash    TEXT,
    attempt        INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {schema}{prefix}audit_key_idx ON {prefix}audit (sync_name, source_key, id);
CREATE INDEX IF NOT EXISTS {schema}{prefix}audit_run_idx ON {prefix}audit (run_id);

CREATE TABLE IF NOT EXISTS {schema}{prefix}runs (
    run_id        TEXT PRIMARY KEY,
    sync_name     TEXT NOT NULL,
    partition_key TEXT,
    status        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    created       INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    archived      INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    noop          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    planned       INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    message       TEXT
);
CREATE INDEX IF NOT EXISTS {schema}{prefix}runs_sync_idx ON {prefix}runs (sync_name, started_at);
