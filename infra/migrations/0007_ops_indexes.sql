-- The operator's figures (slipway/stats.py) read windows of recent rows: jobs that ended
-- in the last hour or day, uploads created in it. Without these, each is a scan of the
-- whole (ever-growing) table. Not projections of their own: plain indexes, replay-neutral.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX uploads_created ON uploads (created_at);
