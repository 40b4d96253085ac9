-- kizen-sync state, audit and run tables (Redshift).
-- {schema} and {prefix} are substituted only after they were validated as identifiers.
-- Redshift's VARCHAR(MAX) is VARCHAR(256): every VARCHAR(MAX) column is VARCHAR(MAX) (65535 bytes). Keys are
-- informational (not enforced): the upsert keys of UPDATE ... FROM + INSERT ... WHERE NOT EXISTS.

-- The last state Kizen confirmed per source key. values_json holds the synced values (the
-- data already lives in this warehouse); archived rows keep fingerprint NULL so that a
-- reappearing source row is planned as a restore.
CREATE TABLE IF NOT EXISTS {schema}{prefix}sync_state (
    sync_name   VARCHAR(MAX) NOT NULL,
    source_key  VARCHAR(MAX) NOT NULL,
    kizen_id    VARCHAR(MAX),
    fingerprint VARCHAR(MAX),
    values_json VARCHAR(MAX) NOT NULL DEFAULT '{}',
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    run_id      VARCHAR(MAX),
    updated_at  TIMESTAMPTZ NOT NULL,
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
    id             BIGINT IDENTITY(1, 1) PRIMARY KEY,
    run_id         VARCHAR(MAX) NOT NULL,
    sync_name      VARCHAR(MAX) NOT NULL,
    partition_key  VARCHAR(MAX),
    source_key     VARCHAR(MAX) NOT NULL,
    kizen_id       VARCHAR(MAX),
    operation      VARCHAR(MAX) NOT NULL,
    outcome        VARCHAR(MAX) NOT NULL,
    http_status    INTEGER,
    error_class    VARCHAR(MAX),
    error_message  VARCHAR(MAX),
    field_errors   VARCHAR(MAX),
    changed_fields VARCHAR(MAX),
    values_hash    VARCHAR(MAX),
    attempt        INTEGER NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}{prefix}runs (
    run_id        VARCHAR(MAX) PRIMARY KEY,
    sync_name     VARCHAR(MAX) NOT NULL,
    partition_key VARCHAR(MAX),
    status        VARCHAR(MAX) NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    created       INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    archived      INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    noop          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    planned       INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    message       VARCHAR(MAX)
);
