"""The append-only event log: gapless sequence, canonical CBOR payloads, a BLAKE3 chain.

`append` must run inside a transaction. It locks the log head, so keep appends at the end
of a transaction: the lock is held until commit and serialises all writers
(docs/event-log.md explains why that is what makes the sequence gapless and in order).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import cbor2

from slipway import metrics, queries
from slipway.db import Connection
from slipway.digests import blake3_digest

CHANNEL = "slipway_events"
GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SQL = queries.load("events")


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: what happened, to which subject, with what data."""

    event_type: str
    subject_kind: str
    subject_id: UUID | None
    payload: Mapping[str, Any]


class Event(NamedTuple):
    """An appended event (a NamedTuple: immutable and cheap to build, which replay needs)."""

    sequence: int
    created_at: datetime
    event_type: str
    subject_kind: str
    subject_id: UUID | None
    actor: str
    payload: dict[str, Any]
    payload_cbor: bytes
    payload_digest: bytes
    prev_digest: bytes
    event_digest: bytes

    @classmethod
    def from_tuple(cls, row: tuple[Any, ...]) -> Event:
        """From a `SELECT *` row as a tuple (columns in table order): replay's fast path."""
        seq, created, kind, subject_kind, subject_id, actor, payload, p_digest, prev, digest = row
        return cls(
            seq,
            created,
            kind,
            subject_kind,
            subject_id,
            actor,
            cbor2.loads(payload),
            payload,
            p_digest,
            prev,
            digest,
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        payload_cbor = bytes(row["payload"])
        return cls(
            sequence=row["sequence"],
            created_at=row["created_at"],
            event_type=row["event_type"],
            subject_kind=row["subject_kind"],
            subject_id=row["subject_id"],
            actor=row["actor"],
            payload=cbor2.loads(payload_cbor),
            payload_cbor=payload_cbor,
            payload_digest=bytes(row["payload_digest"]),
            prev_digest=bytes(row["prev_digest"]),
            event_digest=bytes(row["event_digest"]),
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "createdAt": rfc3339(self.created_at),
            "eventType": self.event_type,
            "subjectKind": self.subject_kind,
            "subjectId": str(self.subject_id) if self.subject_id else None,
            "actor": self.actor,
            "payload": self.payload,
            "payloadDigest": self.payload_digest.hex(),
        }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _check_plain(value: Any, path: str = "payload") -> None:
    """Payloads hold JSON-shaped data only, so the decoded CBOR is also valid JSON."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: non-finite float")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: non-text key {key!r}")
            _check_plain(item, f"{path}.{key}")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not allowed in an event payload")


def canonical_cbor(payload: Mapping[str, Any]) -> bytes:
    """RFC 8949 deterministic encoding (shortest forms, sorted keys, definite lengths)."""
    _check_plain(payload)
    return cbor2.dumps(payload, canonical=True)


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def chain_digest(
    sequence: int,
    created_at: datetime,
    event_type: str,
    subject_kind: str,
    subject_id: UUID | None,
    actor: str,
    payload_digest: bytes,
    prev_digest: bytes,
) -> bytes:
    """BLAKE3 over every column of the event, linking it to its predecessor."""
    record = [
        sequence,
        micros(created_at),
        event_type,
        subject_kind,
        str(subject_id) if subject_id else None,
        actor,
        payload_digest,
        prev_digest,
    ]
    return blake3_digest(cbor2.dumps(record, canonical=True))


def append(conn: Connection, actor: str, *new_events: NewEvent) -> list[Event]:
    """Append events in order. The head is read (and locked) once; the numbers and the
    chain of every event after the first are computed here, since the lock is ours until
    commit. Inside a pipeline (projections.record uses one) the inserts are queued and
    travel with the next round trip, keeping the locked part of a transaction short."""
    prepared = []
    for new in new_events:  # all that does not need the head, before taking it
        payload_cbor = canonical_cbor(new.payload)
        payload = dict(cbor2.loads(payload_cbor))
        prepared.append((new, payload, payload_cbor, blake3_digest(payload_cbor)))
    head = conn.execute(SQL["lock_head"]).fetchone()
    assert head is not None, "event_head row missing: run the migrations"
    sequence, prev = head["last_sequence"], bytes(head["last_digest"])
    created_at: datetime = head["now"]
    appended = []
    for new, payload, payload_cbor, payload_digest in prepared:
        sequence += 1
        digest = chain_digest(
            sequence,
            created_at,
            new.event_type,
            new.subject_kind,
            new.subject_id,
            actor,
            payload_digest,
            prev,
        )
        appended.append(
            Event(
                sequence,
                created_at,
                new.event_type,
                new.subject_kind,
                new.subject_id,
                actor,
                payload,
                payload_cbor,
                payload_digest,
                prev,
                digest,
            )
        )
        prev = digest
    for e in appended:  # queued inside a pipeline, sent one by one outside it
        conn.execute(
            SQL["insert"],
            {
                "sequence": e.sequence,
                "created_at": e.created_at,
                "event_type": e.event_type,
                "subject_kind": e.subject_kind,
                "subject_id": e.subject_id,
                "actor": e.actor,
                "payload": e.payload_cbor,
                "payload_digest": e.payload_digest,
                "prev_digest": e.prev_digest,
                "event_digest": e.event_digest,
            },
        )
    metrics.events_appended(new_events)
    return appended


def read(conn: Connection, since: int, limit: int) -> list[Event]:
    rows = conn.execute(SQL["read_since"], {"since": since, "limit": limit}).fetchall()
    return [Event.from_row(row) for row in rows]


def wait_for(conn: Connection, since: int, limit: int, wait_seconds: float) -> list[Event]:
    """Events after `since`; if none, block until one commits or `wait_seconds` pass.

    LISTEN comes before the first read, so a commit between the read and the wait still
    leaves its notification queued on the connection: no lost wake-up, no busy polling.
    """
    deadline = time.monotonic() + wait_seconds
    conn.execute(f"LISTEN {CHANNEL}")
    try:
        while True:
            found = read(conn, since, limit)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            for _ in conn.notifies(timeout=remaining, stop_after=1):
                pass
    finally:
        conn.execute(f"UNLISTEN {CHANNEL}")
        metrics.long_poll("events", time.monotonic() - deadline + wait_seconds)


@dataclass(frozen=True)
class ChainProblem:
    sequence: int
    problem: str


def verify_chain(conn: Connection, batch: int = 5000) -> Iterator[ChainProblem]:
    """Recompute every digest and link; yields each place the log was altered."""
    expected_seq, prev = 1, GENESIS
    with conn.transaction(), conn.cursor(name="verify_chain") as cur:
        cur.execute("SELECT * FROM events ORDER BY sequence")
        while rows := cur.fetchmany(batch):
            for row in rows:
                event = Event.from_row(row)
                if event.sequence != expected_seq:
                    yield ChainProblem(expected_seq, f"missing (next is {event.sequence})")
                if blake3_digest(event.payload_cbor) != event.payload_digest:
                    yield ChainProblem(event.sequence, "payload does not match its digest")
                if event.prev_digest != prev:
                    yield ChainProblem(event.sequence, "does not link to the previous event")
                recomputed = chain_digest(
                    event.sequence,
                    event.created_at,
                    event.event_type,
                    event.subject_kind,
                    event.subject_id,
                    event.actor,
                    event.payload_digest,
                    event.prev_digest,
                )
                if recomputed != event.event_digest:
                    yield ChainProblem(event.sequence, "row was altered (event digest differs)")
                expected_seq, prev = event.sequence + 1, event.event_digest
    head = conn.execute(SQL["head"]).fetchone()
    assert head is not None
    if head["last_sequence"] != expected_seq - 1 or bytes(head["last_digest"]) != prev:
        yield ChainProblem(head["last_sequence"], "log head does not match the last event")
