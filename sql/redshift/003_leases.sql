-- The run lease of each sync: one run per sync at a time (kizen_sync/warehouse/lease.py).
-- A row per sync names the run holding it (run id, host, pid, since, last heartbeat); it is
-- taken by compare-and-swap on version, renewed by the holder, and taken over once expired
-- (timestamps from the database's clock) or once the holder's process is gone (host_id, pid
-- and pid_start identify it on the same machine).
-- The primary key is not enforced here: kizen_sync/warehouse/lease.py settles a double insert
-- (the earliest claim keeps the row, the other run deletes its own and waits).
CREATE TABLE IF NOT EXISTS {schema}{prefix}leases (
    sync_name    VARCHAR(MAX) PRIMARY KEY,
    run_id       VARCHAR(MAX),
    owner        VARCHAR(MAX),
    host_id      VARCHAR(MAX),
    pid          BIGINT,
    pid_start    BIGINT,
    acquired_at  TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    version      BIGINT NOT NULL DEFAULT 0
);
