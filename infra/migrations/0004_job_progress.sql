-- What a running job last reported (through its heartbeat), e.g. {"tiles": 5120}.
ALTER TABLE jobs ADD COLUMN progress jsonb;
