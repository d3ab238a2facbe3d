-- name: get
SELECT * FROM uploads WHERE id = %(id)s;

-- name: lock
SELECT * FROM uploads WHERE id = %(id)s FOR UPDATE;

-- name: claim_verification
-- A lease on hashing one upload: taken when free or expired, renewed by its holder.
INSERT INTO upload_checks (upload_id, holder, lease_expires_at)
VALUES (%(id)s, %(holder)s, now() + make_interval(secs => %(lease)s))
ON CONFLICT (upload_id) DO UPDATE
SET holder = EXCLUDED.holder, lease_expires_at = EXCLUDED.lease_expires_at
WHERE upload_checks.holder IS NULL
   OR upload_checks.holder = EXCLUDED.holder
   OR upload_checks.lease_expires_at < now()
RETURNING holder;

-- name: release_verification
UPDATE upload_checks SET holder = NULL, lease_expires_at = NULL
WHERE upload_id = %(id)s AND holder = %(holder)s;

-- name: pending_ids
SELECT id FROM uploads WHERE state = 'pending' AND id = ANY(%(ids)s);

-- name: pending_to_check
-- Pending uploads old enough that their notification should have arrived, least recently
-- checked first; they are marked checked now, so the next run takes the next ones.
WITH due AS (
    SELECT u.id FROM uploads u LEFT JOIN upload_checks c ON c.upload_id = u.id
    WHERE u.state = 'pending' AND u.created_at < now() - make_interval(secs => %(min_age)s)
    ORDER BY c.checked_at NULLS FIRST, u.created_at
    LIMIT %(limit)s
), marked AS (
    INSERT INTO upload_checks (upload_id, checked_at) SELECT id, now() FROM due
    ON CONFLICT (upload_id) DO UPDATE SET checked_at = EXCLUDED.checked_at
)
SELECT * FROM uploads WHERE id IN (SELECT id FROM due);

-- name: settled_checks
-- Checks of uploads that are no longer pending (the row is only liveness).
DELETE FROM upload_checks c USING uploads u
WHERE u.id = c.upload_id AND u.state <> 'pending';

-- name: sweeper_state
SELECT value FROM sweeper_state WHERE name = %(name)s;

-- name: set_sweeper_state
INSERT INTO sweeper_state (name, value) VALUES (%(name)s, %(value)s)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;

-- name: created_event
-- The event that created an upload: its payload names the request (correlationId). It
-- may still wait in the inbox for its turn (docs/event-log.md#group-commit).
SELECT payload FROM events
WHERE subject_kind = 'upload' AND subject_id = %(id)s AND event_type = 'v1.upload.created'
UNION ALL
SELECT payload FROM event_inbox
WHERE subject_kind = 'upload' AND subject_id = %(id)s AND event_type = 'v1.upload.created'
LIMIT 1;
