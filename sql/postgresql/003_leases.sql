-- The run lease of each sync: one run per sync at a time (kizen_sync/warehouse/lease.py).
-- On PostgreSQL the lease itself is a session-level advisory lock; this row only names the
-- run that holds it (run id, host, pid, since, last heartbeat) for the run that has to wait.
-- host_id, pid and pid_start let a waiting run on the same machine see that the holder's
-- process is gone. version is bumped by every write (compare-and-swap on warehouses without
-- advisory locks).
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
