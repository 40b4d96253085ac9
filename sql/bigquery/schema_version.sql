-- Bookkeeping of applied migrations; run before every ensure_schema() (idempotent).
CREATE TABLE IF NOT EXISTS {schema}{prefix}schema_version (
    version    INT64 NOT NULL,
    name       STRING NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
