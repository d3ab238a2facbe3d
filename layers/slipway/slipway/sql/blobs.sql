-- name: get
SELECT * FROM blobs WHERE sha256 = %(sha256)s;

-- name: lock_content
-- Serialises recording a blob and deleting an unrecorded one at the same key.
SELECT pg_advisory_xact_lock(%(key)s);

-- name: page
SELECT * FROM blobs WHERE sha256 > %(after)s ORDER BY sha256 LIMIT %(limit)s;

-- name: recorded_keys
SELECT object_key FROM blobs WHERE object_key = ANY(%(keys)s);
