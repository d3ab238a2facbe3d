-- name: now
SELECT clock_timestamp() AS now;

-- name: inbox_insert
-- The id (the order the sequencer keeps) is taken here, after every projection write of
-- the transaction: see docs/event-log.md#group-commit.
INSERT INTO event_inbox (created_at, event_type, subject_kind, subject_id, actor, payload,
                         payload_digest)
VALUES (%(created_at)s, %(event_type)s, %(subject_kind)s, %(subject_id)s, %(actor)s,
        %(payload)s, %(payload_digest)s);

-- The sequencer's turn: a session advisory lock (docs/event-log.md#group-commit).
-- name: try_lead
SELECT pg_try_advisory_lock(7305146216437563241) AS lead;

-- name: lead
SELECT pg_advisory_lock(7305146216437563241);

-- name: end_turn
SELECT pg_advisory_unlock(7305146216437563241);

-- name: inbox_waiting
SELECT EXISTS (SELECT 1 FROM event_inbox) AS waiting;

-- name: inbox_pending
-- The oldest committed events, each with the head the batch extends (only the turn's
-- holder writes it).
SELECT i.id, i.created_at, i.event_type, i.subject_kind, i.subject_id, i.actor,
       i.payload_digest, h.last_sequence, h.last_digest
FROM event_inbox i CROSS JOIN event_head h
ORDER BY i.id
LIMIT %(limit)s;

-- name: log_from_inbox
-- One statement moves the batch: out of the inbox, into the log. The payloads stay inside
-- the database; the numbers and digests come from the sequencer (the arrays are sent in
-- binary: quoting them as text cost more than the move).
WITH moved AS (
    DELETE FROM event_inbox WHERE id = ANY(%(ids)b::bigint[]) RETURNING *
)
INSERT INTO events (sequence, created_at, event_type, subject_kind, subject_id, actor,
                    payload, payload_digest, prev_digest, event_digest)
SELECT n.sequence, m.created_at, m.event_type, m.subject_kind, m.subject_id, m.actor,
       m.payload, m.payload_digest, n.prev_digest, n.event_digest
FROM unnest(%(ids)b::bigint[], %(sequences)b::bigint[], %(prev_digests)b::bytea[],
            %(event_digests)b::bytea[]) AS n (id, sequence, prev_digest, event_digest)
JOIN moved m USING (id)
ORDER BY n.sequence;

-- name: inbox_all
SELECT * FROM event_inbox ORDER BY id;

-- name: read_since
SELECT * FROM events
WHERE sequence > %(since)s
ORDER BY sequence
LIMIT %(limit)s;

-- name: head
SELECT last_sequence, last_digest FROM event_head;
