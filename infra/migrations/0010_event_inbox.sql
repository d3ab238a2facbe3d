-- Group commit (docs/event-log.md#group-commit): writers insert their events into this
-- inbox in their own transactions, taking the id only after every row lock their
-- projections need, and a sequencer moves committed rows into `events` in id order, many
-- per transaction, under the head lock. The gapless number and the chain digests are the
-- sequencer's; the payload, its digest and `created_at` are the writer's.
CREATE TABLE event_inbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at     timestamptz NOT NULL,
    event_type     text NOT NULL CHECK (event_type ~ '^v[0-9]+(\.[a-z][a-z0-9_]*){2,}$'),
    subject_kind   text NOT NULL,
    subject_id     uuid,
    actor          text NOT NULL,
    payload        bytea NOT NULL,
    payload_digest bytea NOT NULL CHECK (length(payload_digest) = 32)
);

-- The projections no longer hold the sequence of their last event: a writer does not know
-- it (the sequencer assigns it after the writer's commit). `events_subject` finds a row's
-- history instead.
ALTER TABLE uploads DROP COLUMN last_sequence;
ALTER TABLE blobs DROP COLUMN last_sequence;
ALTER TABLE jobs DROP COLUMN last_sequence;
ALTER TABLE slides DROP COLUMN last_sequence;
ALTER TABLE telemetry_sessions DROP COLUMN last_sequence;
ALTER TABLE telemetry_runs DROP COLUMN last_sequence;
ALTER TABLE telemetry_streams DROP COLUMN last_sequence;
ALTER TABLE line_scans DROP COLUMN last_sequence;
ALTER TABLE line_scan_tiles DROP COLUMN last_sequence;
