-- The operator's figures (slipway/stats.py), across all owners. Each query reads an
-- index range, never the whole table: the queue from jobs_claimable (only QUEUED and
-- RUNNING rows), the last window of finished jobs from jobs_finished, the window's
-- uploads from uploads_created (migration 0007_ops_indexes).

-- name: queues
-- Depth per type; a job waits from when it became due: queued, re-queued or its
-- retry time (updated_at is the enqueue or the failed attempt, next_retry_at its due time).
SELECT type,
       count(*) FILTER (WHERE status = 'QUEUED') AS queued,
       count(*) FILTER (WHERE status = 'QUEUED'
                        AND (next_retry_at IS NULL OR next_retry_at <= now())) AS due,
       count(*) FILTER (WHERE status = 'QUEUED' AND last_error_code IS NOT NULL) AS retrying,
       count(*) FILTER (WHERE status = 'RUNNING') AS running,
       min(coalesce(next_retry_at, updated_at)) FILTER (
           WHERE status = 'QUEUED' AND (next_retry_at IS NULL OR next_retry_at <= now())
       ) AS oldest_due_since
FROM jobs
WHERE status IN ('QUEUED', 'RUNNING')
GROUP BY type
ORDER BY type;

-- name: throughput
-- Jobs that ended in the last %(minutes)s minutes, per type and final status.
SELECT type, status, count(*) AS finished
FROM jobs
WHERE finished_at >= now() - make_interval(mins => %(minutes)s)
GROUP BY type, status
ORDER BY type, status;

-- name: failures
-- FAILED jobs of the window grouped by code: how many, the latest message, the latest ids.
SELECT coalesce(last_error_code, 'UNKNOWN') AS code,
       count(*) AS count,
       max(finished_at) AS last_at,
       (array_agg(last_error_message ORDER BY finished_at DESC, id))[1] AS last_message,
       array_agg(DISTINCT type ORDER BY type) AS types,
       (array_agg(id ORDER BY finished_at DESC, id))[1:%(sample)s] AS job_ids
FROM jobs
WHERE finished_at >= now() - make_interval(hours => %(hours)s) AND status = 'FAILED'
GROUP BY 1
ORDER BY count(*) DESC, max(finished_at) DESC
LIMIT %(codes)s;

-- name: slowest
-- The longest runs among the jobs that ended in the window (first claim to the end).
SELECT id, type, owner, status, upload_id, started_at, finished_at,
       extract(epoch FROM finished_at - started_at)::float8 AS seconds
FROM jobs
WHERE finished_at >= now() - make_interval(hours => %(hours)s) AND started_at IS NOT NULL
ORDER BY finished_at - started_at DESC, id
LIMIT %(limit)s;

-- name: uploads
-- Uploads created in the window, by state.
SELECT state, count(*) AS count
FROM uploads
WHERE created_at >= now() - make_interval(hours => %(hours)s)
GROUP BY state
ORDER BY state;
