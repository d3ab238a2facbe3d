-- Fan-out of one slide's tiling (slipway/fanout.py, docs/jobs.md#fan-out).

-- name: lock
SELECT * FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: get
SELECT * FROM jobs WHERE id = %(id)s;

-- name: region_counts
-- Read after the parent's row lock: the last two regions to succeed see each other.
SELECT count(*) FILTER (WHERE status = 'SUCCEEDED') AS done, count(*) AS total
FROM jobs
WHERE parent_id = %(parent)s AND type = 'tile_region' AND payload->>'fanoutId' = %(fanout)s;

-- name: region_results
SELECT status, result FROM jobs
WHERE parent_id = %(parent)s AND type = 'tile_region' AND payload->>'fanoutId' = %(fanout)s
ORDER BY (payload->>'region')::int;

-- name: set_progress
-- Liveness, like a heartbeat's (projectors.LIVENESS): the parent's regions done / total.
UPDATE jobs SET progress = %(progress)s WHERE id = %(id)s;

-- name: open_children
-- A child another transaction holds (being claimed, or ending) is skipped: it checks its
-- parent itself. Locking in this order (parent, then children without waiting) cannot
-- deadlock with a child's end, which locks the child, then the parent.
SELECT id FROM jobs
WHERE parent_id = %(parent)s AND status IN ('QUEUED', 'RUNNING')
FOR UPDATE SKIP LOCKED;
