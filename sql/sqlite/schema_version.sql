-- Bookkeeping of applied migrations; run before every ensure_schema() (idempotent).
CREATE TABLE IF NOT EXISTS {schema}{prefix}schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
