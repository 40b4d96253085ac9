-- Bookkeeping of applied migrations; run before every ensure_schema() (idempotent).
CREATE TABLE IF NOT EXISTS {schema}{prefix}schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
