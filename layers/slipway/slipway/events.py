"""The append-only event log: gapless sequence, canonical CBOR payloads, a BLAKE3 chain.

Group commit (docs/event-log.md): a writer inserts its events into `event_inbox` in its
own transaction (`prepare`, `submit`; `append` for both) and holds no shared lock; after
its commit `sequence` moves the committed inbox into `events`, numbering and chaining a
batch at a time, one sequencer at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import cbor2
import psycopg

from slipway import db, metrics, queries
from slipway.db import Connection
from slipway.digests import blake3_digest

CHANNEL = "slipway_events"
GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SQL = queries.load("events")
SEQUENCE_BATCH = 5000  # events per sequencing transaction
LEAD_SECONDS = 0.5  # a writer's longest turn as the sequencer, after its own commit
log = logging.getLogger(__name__)
REPLAY_COLUMNS = "sequence, created_at, event_type, subject_kind, subject_id, actor, payload"


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
        """From a row of `REPLAY_COLUMNS` as a tuple: replay's fast path, which leaves the
        digests out (projectors never read them; `verify_chain` checks them)."""
        seq, created, kind, subject_kind, subject_id, actor, payload = row
        return cls(
            seq, created, kind, subject_kind, subject_id, actor, cbor2.loads(payload), payload,
            b"", b"", b"",
        )  # fmt: skip

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


def prepare(conn: Connection, actor: str, new_events: Iterable[NewEvent]) -> list[Event]:
    """The events as the writer knows them: canonical payloads and their digests, stamped
    with the database's clock. Their `sequence` is 0 and their chain digests empty until
    the sequencer moves them into the log."""
    row = conn.execute(SQL["now"]).fetchone()
    assert row is not None
    created_at: datetime = row["now"]
    prepared = []
    for new in new_events:
        payload_cbor = canonical_cbor(new.payload)
        prepared.append(
            Event(
                0,
                created_at,
                new.event_type,
                new.subject_kind,
                new.subject_id,
                actor,
                dict(cbor2.loads(payload_cbor)),
                payload_cbor,
                blake3_digest(payload_cbor),
                b"",
                b"",
            )
        )
    return prepared


def submit(conn: Connection, prepared: Iterable[Event]) -> None:
    """Insert prepared events into the inbox, in the caller's transaction (queued, inside
    a pipeline), and have them sequenced once it commits (`db.transaction` runs that).
    Call it after every projection write of the transaction: the inbox id is what orders
    two writers of one row (docs/event-log.md#group-commit)."""
    events = list(prepared)
    for e in events:
        conn.execute(
            SQL["inbox_insert"],
            {
                "created_at": e.created_at,
                "event_type": e.event_type,
                "subject_kind": e.subject_kind,
                "subject_id": e.subject_id,
                "actor": e.actor,
                "payload": e.payload_cbor,
                "payload_digest": e.payload_digest,
            },
        )
    db.after_commit(conn, sequence_after_commit)
    metrics.events_appended(events)


def append(conn: Connection, actor: str, *new_events: NewEvent) -> list[Event]:
    """Prepare and submit events that change no projection (`projections.record` does the
    same around its projectors)."""
    prepared = prepare(conn, actor, new_events)
    submit(conn, prepared)
    return prepared


def sequence(conn: Connection, batch: int = SEQUENCE_BATCH, wait: bool = True) -> int:
    """Move the committed inbox into the log, in turns; returns how many events moved.

    A turn is the sequencer's advisory lock: `wait` for it (the sweeper, tests), or take
    it only if it is free (a writer after its commit, `sequence_after_commit`). A writer
    that finds it taken leaves its events to the holder, which looks at the inbox again
    once its turn has ended, and takes another turn if anything is waiting: the writer
    committed before that look, so no committed event is left behind. Turns go on until
    the inbox is found empty, or for LEAD_SECONDS under a steady stream (then the next
    writer, or the sweeper, goes on)."""
    moved, deadline = 0, time.monotonic() + LEAD_SECONDS
    while True:
        if wait:
            conn.execute(SQL["lead"])
        elif not _row(conn.execute(SQL["try_lead"]))["lead"]:
            return moved
        try:
            moved += _move(conn, batch)
        finally:
            with conn.pipeline():  # one round trip: end the turn, then look again
                conn.execute(SQL["end_turn"])
                waiting = conn.execute(SQL["inbox_waiting"])
        if not _row(waiting)["waiting"] or time.monotonic() > deadline:
            return moved


def sequence_after_commit(conn: Connection) -> None:
    """A writer's turn after its commit (db.committing runs it). If it fails, the events
    are safe in the inbox, and the next writer's turn or the sweeper's moves them: the
    writer's transaction committed, so its caller must not see an error."""
    try:
        sequence(conn, wait=False)
    except psycopg.Error as exc:
        log.warning("events left in the inbox for the next sequencer: %s", exc)


def _row(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None
    return row


def _move(conn: Connection, batch: int) -> int:
    """During the turn: the committed inbox into the log, in id order, `batch` events per
    transaction (two statements, two round trips and one WAL flush each), until none is
    left."""
    moved = 0
    while True:
        with conn.pipeline(), conn.transaction():
            pending = conn.execute(SQL["inbox_pending"], {"limit": batch}).fetchall()
            if not pending:
                return moved
            number, prev = pending[0]["last_sequence"], bytes(pending[0]["last_digest"])
            ids, numbers, prevs, digests = [], [], [], []
            for row in pending:
                number += 1
                digest = chain_digest(
                    number,
                    row["created_at"],
                    row["event_type"],
                    row["subject_kind"],
                    row["subject_id"],
                    row["actor"],
                    bytes(row["payload_digest"]),
                    prev,
                )
                ids.append(row["id"])
                numbers.append(number)
                prevs.append(prev)
                digests.append(digest)
                prev = digest
            params = {"ids": ids, "sequences": numbers, "prev_digests": prevs}
            # the head trigger refuses any row that does not extend the chain exactly
            conn.execute(SQL["log_from_inbox"], params | {"event_digests": digests})
        moved += len(pending)
        if len(pending) < batch:
            return moved


def inbox(conn: Connection) -> list[Event]:
    """The committed events not sequenced yet, in the order the sequencer will take them
    (sequence 0): replay folds them after the log, in the same snapshot."""
    return [
        Event(
            0,
            row["created_at"],
            row["event_type"],
            row["subject_kind"],
            row["subject_id"],
            row["actor"],
            cbor2.loads(bytes(row["payload"])),
            bytes(row["payload"]),
            bytes(row["payload_digest"]),
            b"",
            b"",
        )
        for row in conn.execute(SQL["inbox_all"])
    ]


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
