-- kizen-sync state, audit and run tables (DuckDB).
-- {schema} and {prefix} are substituted only after they were validated as identifiers.
-- No indexes on the tables that grow with the source (sync_state, audit, parked): DuckDB
-- scans columns, and keeps every index (ART) wholly in memory. Keys stay unique because one
-- run per sync writes at a time (the lease) and upserts are UPDATE + INSERT WHERE NOT EXISTS.

-- The last state Kizen confirmed per source key. values_json holds the synced values (the
-- data already lives in this warehouse); archived rows keep fingerprint NULL so that a
-- reappearing source row is planned as a restore.
CREATE TABLE IF NOT EXISTS {schema}{prefix}sync_state (
    sync_name   text NOT NULL,
    source_key  text NOT NULL,
    kizen_id    text,
    fingerprint text,
    values_json text NOT NULL DEFAULT '{}',
    archived    boolean NOT NULL DEFAULT false,
    run_id      text,
    updated_at  timestamptz NOT NULL
);

-- One row per HTTP attempt (attempt 0: nothing was sent, e.g. a mapping failure).
-- operation: create / update / archive / noop / fail, or forget (state row dropped, no request).
-- changed_fields: JSON {field API name: written value}; the names are the contract, values of
--   non-sensitive fields are kept for debugging only, sensitive ones read "[redacted]".
-- error_message / field_errors ({field: [message, ...]}): problems of sensitive fields are
--   withheld and any echo of a sensitive value is "[redacted]".
-- values_hash: HMAC-SHA256 of the record's values (keyed outside the warehouse), never values.
CREATE SEQUENCE IF NOT EXISTS {schema}{prefix}audit_id_seq;
CREATE TABLE IF NOT EXISTS {schema}{prefix}audit (
    id             bigint NOT NULL DEFAULT nextval('{schema}{prefix}audit_id_seq'),
    run_id         text NOT NULL,
    sync_name      text NOT NULL,
    partition_key  text,
    source_key     text NOT NULL,
    kizen_id       text,
    operation      text NOT NULL,
    outcome        text NOT NULL,
    http_status    integer,
    error_class    text,
    error_message  text,
    field_errors   text,
    changed_fields text,
    values_hash    text,
    attempt        integer NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}{prefix}runs (
    run_id        text PRIMARY KEY,
    sync_name     text NOT NULL,
    partition_key text,
    status        text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    created       integer NOT NULL DEFAULT 0,
    updated       integer NOT NULL DEFAULT 0,
    archived      integer NOT NULL DEFAULT 0,
    unchanged     integer NOT NULL DEFAULT 0,
    noop          integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    planned       integer NOT NULL DEFAULT 0,
    requests      integer NOT NULL DEFAULT 0,
    message       text
);
