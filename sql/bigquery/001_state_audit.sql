-- kizen-sync state, audit and run tables (BigQuery).
-- {schema} and {prefix} are substituted only after they were validated as identifiers.
-- BigQuery has no sequences: audit ids are assigned by kizen-sync (microseconds since the epoch
-- times 1000 plus a counter, increasing within a process), and keys are NOT ENFORCED.

-- The last state Kizen confirmed per source key. values_json holds the synced values (the
-- data already lives in this warehouse); archived rows keep fingerprint NULL so that a
-- reappearing source row is planned as a restore.
CREATE TABLE IF NOT EXISTS {schema}{prefix}sync_state (
    sync_name   STRING NOT NULL,
    source_key  STRING NOT NULL,
    kizen_id    STRING,
    fingerprint STRING,
    values_json STRING NOT NULL,
    archived    BOOL NOT NULL,
    run_id      STRING,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (sync_name, source_key) NOT ENFORCED
);

-- One row per HTTP attempt (attempt 0: nothing was sent, e.g. a mapping failure).
-- operation: create / update / archive / noop / fail, or forget (state row dropped, no request).
-- changed_fields: JSON {field API name: written value}; the names are the contract, values of
--   non-sensitive fields are kept for debugging only, sensitive ones read "[redacted]".
-- error_message / field_errors ({field: [message, ...]}): problems of sensitive fields are
--   withheld and any echo of a sensitive value is "[redacted]".
-- values_hash: HMAC-SHA256 of the record's values (keyed outside the warehouse), never values.
CREATE TABLE IF NOT EXISTS {schema}{prefix}audit (
    id             INT64 NOT NULL,
    run_id         STRING NOT NULL,
    sync_name      STRING NOT NULL,
    partition_key  STRING,
    source_key     STRING NOT NULL,
    kizen_id       STRING,
    operation      STRING NOT NULL,
    outcome        STRING NOT NULL,
    http_status    INT64,
    error_class    STRING,
    error_message  STRING,
    field_errors   STRING,
    changed_fields STRING,
    values_hash    STRING,
    attempt        INT64 NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (id) NOT ENFORCED
);

CREATE TABLE IF NOT EXISTS {schema}{prefix}runs (
    run_id        STRING NOT NULL,
    sync_name     STRING NOT NULL,
    partition_key STRING,
    status        STRING NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    created       INT64 NOT NULL,
    updated       INT64 NOT NULL,
    archived      INT64 NOT NULL,
    unchanged     INT64 NOT NULL,
    noop          INT64 NOT NULL,
    failed        INT64 NOT NULL,
    planned       INT64 NOT NULL,
    requests      INT64 NOT NULL,
    message       STRING,
    PRIMARY KEY (run_id) NOT ENFORCED
);
