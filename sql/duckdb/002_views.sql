-- Monitoring views over the audit and run tables (duckdb).

-- Records whose latest terminal attempt (success or failed) failed. A later success closes
-- the failure; failed_runs counts the distinct runs that failed it since its last success;
-- age is the number of seconds since the last failure.
CREATE OR REPLACE VIEW {schema}{prefix}open_failures AS
WITH terminal AS (
    SELECT id, run_id, sync_name, source_key, outcome, finished_at
    FROM {schema}{prefix}audit
    WHERE outcome IN ('success', 'failed')
),
latest AS (
    SELECT sync_name, source_key, max(id) AS last_id
    FROM terminal
    GROUP BY sync_name, source_key
),
last_success AS (
    SELECT sync_name, source_key, max(id) AS success_id
    FROM terminal
    WHERE outcome = 'success'
    GROUP BY sync_name, source_key
),
failed_since AS (
    SELECT t.sync_name, t.source_key,
           min(t.finished_at) AS first_failed_at,
           max(t.finished_at) AS last_failed_at,
           count(DISTINCT t.run_id) AS failed_runs
    FROM terminal t
    LEFT JOIN last_success s
      ON s.sync_name = t.sync_name AND s.source_key = t.source_key
    WHERE t.outcome = 'failed' AND (s.success_id IS NULL OR t.id > s.success_id)
    GROUP BY t.sync_name, t.source_key
)
SELECT a.sync_name, a.source_key, a.kizen_id, a.operation, a.error_class, a.error_message,
       a.field_errors, a.http_status, f.first_failed_at, f.last_failed_at, f.failed_runs,
       extract(epoch FROM (now() - f.last_failed_at)) AS age
FROM latest l
JOIN {schema}{prefix}audit a ON a.id = l.last_id
JOIN failed_since f ON f.sync_name = l.sync_name AND f.source_key = l.source_key
WHERE a.outcome = 'failed';

-- One row per run with what the audit table recorded for it.
CREATE OR REPLACE VIEW {schema}{prefix}run_summary AS
SELECT r.run_id, r.sync_name, r.partition_key, r.status, r.started_at, r.finished_at,
       r.created, r.updated, r.archived, r.unchanged, r.noop, r.failed, r.planned, r.requests,
       r.message,
       coalesce(a.attempts, 0) AS audit_attempts,
       coalesce(a.records, 0) AS audit_records,
       coalesce(a.succeeded, 0) AS audit_succeeded,
       coalesce(a.failed_records, 0) AS audit_failed
FROM {schema}{prefix}runs r
LEFT JOIN (
    SELECT run_id,
           count(*) AS attempts,
           count(DISTINCT source_key) AS records,
           sum(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) AS succeeded,
           sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed_records
    FROM {schema}{prefix}audit
    GROUP BY run_id
) a ON a.run_id = r.run_id;
