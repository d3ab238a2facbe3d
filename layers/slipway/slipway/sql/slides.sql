-- name: get
SELECT * FROM slides WHERE upload_id = %(upload_id)s;
