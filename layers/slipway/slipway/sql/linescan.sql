-- name: get_scan
SELECT * FROM line_scans WHERE id = %(id)s;

-- name: get_tile
SELECT * FROM line_scan_tiles WHERE scan_id = %(scan_id)s AND tile_id = %(tile_id)s;

-- name: tiles
SELECT * FROM line_scan_tiles WHERE scan_id = %(scan_id)s ORDER BY created_at, tile_id;

-- name: claim
-- Serialises the transactions that may create a scan until commit (tiles are locked
-- through DbStore, which does the same): FOR UPDATE locks nothing while the row does
-- not exist yet.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0));
