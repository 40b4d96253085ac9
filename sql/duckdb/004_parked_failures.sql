-- Parked failures (DuckDB): records whose last attempt failed for a reason that sending
-- the same values again cannot fix (a value that cannot be mapped, Kizen's 400, 404 or 409).
-- fingerprint is the row's fingerprint when it failed (it covers the row's mapped columns and
-- the mapping signature): while the source row still has it, runs skip the record; a changed
-- row, a changed mapping, `kizen-sync retry` or `run --include-parked` send it again.
-- parked_at is when the record first failed with this fingerprint ("unchanged since").
-- Retryable failures (5xx, 429, timeouts) are never parked; a success or a resolve removes
-- the row.
CREATE TABLE IF NOT EXISTS {schema}{prefix}parked (
    sync_name   text NOT NULL,
    source_key  text NOT NULL,
    fingerprint text NOT NULL,
    error_class text NOT NULL,
    run_id      text NOT NULL,
    parked_at   timestamptz NOT NULL
);
