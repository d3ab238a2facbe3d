-- The append-only event log: the source of truth (docs/event-log.md).
--
-- Gapless, in-order sequences: every append locks the single `event_head` row, takes
-- head + 1 and extends the hash chain; the lock is held until the transaction ends, so
-- numbers are handed out one transaction at a time and become visible in order. A rolled
-- back transaction rolls back its head update too, so it leaves no gap. The trigger below
-- refuses any insert that does not extend the head exactly, whoever issues it.

CREATE TABLE events (
    sequence       bigint PRIMARY KEY CHECK (sequence > 0),
    created_at     timestamptz NOT NULL,
    event_type     text NOT NULL CHECK (event_type ~ '^v[0-9]+(\.[a-z][a-z0-9_]*){2,}$'),
    subject_kind   text NOT NULL,
    subject_id     uuid,
    actor          text NOT NULL,
    payload        bytea NOT NULL,                                     -- canonical CBOR
    payload_digest bytea NOT NULL CHECK (length(payload_digest) = 32), -- BLAKE3(payload)
    prev_digest    bytea NOT NULL CHECK (length(prev_digest) = 32),    -- event_digest of sequence - 1
    event_digest   bytea NOT NULL CHECK (length(event_digest) = 32)    -- BLAKE3 over this row (events.py)
);
CREATE INDEX events_subject ON events (subject_kind, subject_id);
CREATE INDEX events_type ON events (event_type, sequence);

CREATE TABLE event_head (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_sequence bigint NOT NULL,
    last_digest   bytea NOT NULL
);
INSERT INTO event_head (last_sequence, last_digest) VALUES (0, '\x'::bytea || decode(repeat('00', 32), 'hex'));

CREATE FUNCTION events_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one statement checks and advances the head (this is on every append's critical path)
    UPDATE event_head SET last_sequence = NEW.sequence, last_digest = NEW.event_digest
    WHERE last_sequence = NEW.sequence - 1 AND last_digest = NEW.prev_digest;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not extend the log head (gapless chain)', NEW.sequence
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    PERFORM pg_notify('slipway_events', NEW.sequence::text);
    RETURN NEW;
END $$;
CREATE TRIGGER events_extend_head BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_extend_head();

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();
