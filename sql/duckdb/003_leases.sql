-- The run lease of each sync: one run per sync at a time (kizen_sync/warehouse/lease.py).
-- A row per sync names the run holding it (run id, host, pid, since, last heartbeat); it is
-- taken by compare-and-swap on version, renewed by the holder, and taken over once expired
-- (timestamps from the database's clock) or once the holder's process is gone (host_id, pid
-- and pid_start identify it on the same machine).
CREATE TABLE IF NOT EXISTS {schema}{prefix}leases (
    sync_name    text PRIMARY KEY,
    run_id       text,
    owner        text,
    host_id      text,
    pid          bigint,
    pid_start    bigint,
    acquired_at  timestamptz,
    heartbeat_at timestamptz,
    expires_at   timestamptz,
    version      bigint NOT NULL DEFAULT 0
);
