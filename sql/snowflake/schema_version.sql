-- Bookkeeping of applied migrations; run before every ensure_schema() (idempotent).
CREATE TABLE IF NOT EXISTS {schema}{prefix}schema_version (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP_TZ NOT NULL
);
