-- kizen-sync state, audit and run tables (Snowflake).
-- {schema} and {prefix} are substituted only after they were validated as identifiers.
-- Snowflake enforces NOT NULL only: the primary keys document the upsert keys (MERGE).

-- The last state Kizen confirmed per source key. values_json holds the synced values (the
-- data already lives in this warehouse); archived rows keep fingerprint NULL so that a
-- reappearing source row is planned as a restore.
CREATE TABLE IF NOT EXISTS {schema}{prefix}sync_state (
    sync_name   VARCHAR NOT NULL,
    source_key  VARCHAR NOT NULL,
    kizen_id    VARCHAR,
    fingerprint VARCHAR,
    values_json VARCHAR NOT NULL DEFAULT '{}',
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    run_id      VARCHAR,
    updated_at  TIMESTAMP_TZ NOT NULL,
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
    id             INTEGER AUTOINCREMENT PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    sync_name      VARCHAR NOT NULL,
    partition_key  VARCHAR,
    source_key     VARCHAR NOT NULL,
    kizen_id       VARCHAR,
    operation      VARCHAR NOT NULL,
    outcome        VARCHAR NOT NULL,
    http_status    INTEGER,
    error_class    VARCHAR,
    error_message  VARCHAR,
    field_errors   VARCHAR,
    changed_fields VARCHAR,
    values_hash    VARCHAR,
    attempt        INTEGER NOT NULL,
    started_at     TIMESTAMP_TZ NOT NULL,
    finished_at    TIMESTAMP_TZ NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}{prefix}runs (
    run_id        VARCHAR PRIMARY KEY,
    sync_name     VARCHAR NOT NULL,
    partition_key VARCHAR,
    status        VARCHAR NOT NULL,
    started_at    TIMESTAMP_TZ NOT NULL,
    finished_at   TIMESTAMP_TZ,
    created       INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    archived      INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    noop          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    planned       INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    message       VARCHAR
);
