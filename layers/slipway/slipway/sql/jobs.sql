-- name: claim
-- The lease is part of the claim: a RUNNING job whose lease ran out is claimable again.
-- One type per claim, so the index (type, created_at) yields the oldest job directly:
-- the cost of a claim does not grow with the depth of the queue.
SELECT * FROM jobs
WHERE type = %(type)s
  AND (   (status = 'QUEUED' AND (next_retry_at IS NULL OR next_retry_at <= now()))
       OR (status = 'RUNNING' AND lease_expires_at < now()))
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: lock
SELECT * FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: get
SELECT * FROM jobs WHERE id = %(id)s;

-- name: for_upload
SELECT * FROM jobs WHERE upload_id = %(upload_id)s ORDER BY created_at;

-- name: due_types
SELECT DISTINCT type FROM jobs
WHERE (status = 'QUEUED' AND (next_retry_at IS NULL OR next_retry_at <= now()))
   OR (status = 'RUNNING' AND lease_expires_at < now());

-- name: heartbeat
-- Liveness, not history: renewing the lease and reporting progress is a plain update of
-- the row, with no event and so no turn on the log's head (projectors.LIVENESS). Only the
-- worker holding this attempt renews it; no row back means the lease was lost.
UPDATE jobs
SET lease_expires_at = now() + make_interval(secs => %(lease)s),
    progress = coalesce(%(progress)s, progress)
WHERE id = %(id)s AND status = 'RUNNING' AND locked_by = %(worker)s
  AND attempt_count = %(attempt)s
RETURNING id, cancel_requested_at;

-- name: watch
-- Between beats (worker.Lease): is this attempt still this worker's, and was it asked to
-- stop? A read, so watching often costs no row version.
SELECT id, cancel_requested_at FROM jobs
WHERE id = %(id)s AND status = 'RUNNING' AND locked_by = %(worker)s
  AND attempt_count = %(attempt)s;

-- name: list_for_owner
-- Newest first; the cursor is the last row's (created_at, id), so pages never overlap.
-- A fanned-out slide's region and finish jobs are not listed (its tile job is), and a
-- WAITING tile job is RUNNING to the API (docs/jobs.md#fan-out).
SELECT * FROM jobs
WHERE owner = %(owner)s
  AND parent_id IS NULL
  AND (%(status)s::text IS NULL OR status = %(status)s::text
       OR (%(status)s::text = 'RUNNING' AND status = 'WAITING'))
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(upload_id)s::uuid IS NULL OR upload_id = %(upload_id)s::uuid)
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;
