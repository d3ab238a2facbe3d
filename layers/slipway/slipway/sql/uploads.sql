-- name: get
SELECT * FROM uploads WHERE id = %(id)s;

-- name: lock
SELECT * FROM uploads WHERE id = %(id)s FOR UPDATE;

-- name: blob
SELECT * FROM blobs WHERE sha256 = %(sha256)s;

-- name: try_verify_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: verify_unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: pending_ids
SELECT id FROM uploads WHERE state = 'pending' AND id = ANY(%(ids)s);

-- name: referenced_blob_keys
SELECT object_key FROM blobs WHERE object_key = ANY(%(keys)s);

-- name: pending_to_check
-- Pending uploads old enough that their notification should have arrived.
SELECT * FROM uploads
WHERE state = 'pending' AND created_at < now() - make_interval(secs => %(min_age)s)
ORDER BY updated_at
LIMIT %(limit)s;

-- name: lock_content
-- Serialises settling uploads of the same bytes, so exactly one of them stores the blob.
SELECT pg_advisory_xact_lock(%(key)s);
