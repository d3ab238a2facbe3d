-- A running job's cancel request (v1.job.cancel_requested): the worker stops at its next
-- checkpoint and records v1.job.cancelled (docs/jobs.md#cancelling-a-running-job).
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE jobs ADD COLUMN cancel_requested_by text;
