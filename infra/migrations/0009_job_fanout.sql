-- Fan-out (docs/jobs.md#fan-out): a tile job over the size threshold WAITs (no claim takes
-- it) while its region jobs run; children name their parent; a region records what it
-- stored (v1.tile.region_tiled) and the waiting parent its fan-out (v1.job.waiting).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('QUEUED', 'RUNNING', 'WAITING', 'SUCCEEDED', 'FAILED', 'CANCELLED'));
ALTER TABLE jobs ADD COLUMN parent_id uuid;
ALTER TABLE jobs ADD COLUMN result jsonb;
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
