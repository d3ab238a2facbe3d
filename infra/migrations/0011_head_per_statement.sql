-- The head moves once per INSERT into `events`, not once per row (docs/event-log.md).
-- A row trigger updated the one-row `event_head` for every event: a sequencer's batch of
-- 5,000 left 5,000 versions of that row in one transaction, none of which can be pruned
-- before it commits, so the table grew (13 MB after 200,000 events) and every update and
-- every read of the head scanned it. A statement trigger checks the whole batch at once,
-- with the same guarantee: the rows extend the head exactly, each linked to the one before.
DROP TRIGGER events_extend_head ON events;
DROP FUNCTION events_extend_head();

CREATE FUNCTION events_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first    events%ROWTYPE;
    newest   events%ROWTYPE;
    added    bigint;
    unlinked bigint;
BEGIN
    SELECT count(*) INTO added FROM added_events;
    IF added = 0 THEN
        RETURN NULL;
    END IF;
    SELECT * INTO first FROM added_events ORDER BY sequence LIMIT 1;
    SELECT * INTO newest FROM added_events ORDER BY sequence DESC LIMIT 1;
    -- every row but the first follows the row numbered one less, by its digest (the
    -- primary key already made the numbers unique, so this also makes them consecutive)
    SELECT a.sequence INTO unlinked
    FROM added_events a LEFT JOIN added_events b ON b.sequence = a.sequence - 1
    WHERE a.sequence > first.sequence AND b.event_digest IS DISTINCT FROM a.prev_digest
    ORDER BY a.sequence
    LIMIT 1;
    IF unlinked IS NULL THEN
        -- and the first extends the head (a concurrent insert that moved it first makes
        -- this find nothing, once its transaction commits)
        UPDATE event_head SET last_sequence = newest.sequence, last_digest = newest.event_digest
        WHERE last_sequence = first.sequence - 1 AND last_digest = first.prev_digest;
        IF FOUND THEN
            PERFORM pg_notify('slipway_events', newest.sequence::text);
            RETURN NULL;
        END IF;
        unlinked := first.sequence;
    END IF;
    RAISE EXCEPTION 'event % does not extend the log head (gapless chain)', unlinked
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER events_extend_head AFTER INSERT ON events
    REFERENCING NEW TABLE AS added_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_extend_head();
