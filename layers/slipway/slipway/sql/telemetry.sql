-- name: get
SELECT * FROM telemetry_sessions WHERE id = %(id)s;

-- name: by_upload
SELECT * FROM telemetry_sessions WHERE upload_id = %(upload_id)s;

-- name: streams
SELECT * FROM telemetry_streams WHERE session_id = %(session_id)s ORDER BY name;

-- name: list_for_owner
SELECT * FROM telemetry_sessions
WHERE owner = %(owner)s
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;
