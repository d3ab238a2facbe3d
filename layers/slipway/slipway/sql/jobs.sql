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
