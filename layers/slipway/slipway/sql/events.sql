-- name: lock_head
-- Taking this row lock serialises appends until the transaction ends (docs/event-log.md).
SELECT last_sequence, last_digest, clock_timestamp() AS now
FROM event_head
FOR UPDATE;

-- name: insert
INSERT INTO events (sequence, created_at, event_type, subject_kind, subject_id, actor,
                    payload, payload_digest, prev_digest, event_digest)
VALUES (%(sequence)s, %(created_at)s, %(event_type)s, %(subject_kind)s, %(subject_id)s,
        %(actor)s, %(payload)s, %(payload_digest)s, %(prev_digest)s, %(event_digest)s);

-- name: read_since
SELECT * FROM events
WHERE sequence > %(since)s
ORDER BY sequence
LIMIT %(limit)s;

-- name: head
SELECT last_sequence, last_digest FROM event_head;
