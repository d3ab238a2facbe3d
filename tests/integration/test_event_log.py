"""The event log under concurrency and tampering, on a real Postgres."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from slipway import db, events
from slipway.events import NewEvent

WRITERS = 8
TOTAL = 10_000


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


class Rollback(Exception):
    pass


def test_concurrent_writers_with_rollbacks_never_let_a_tailing_reader_miss_an_event(
    scratch_db: str,
) -> None:
    committed: list[tuple[int, int]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        rng = random.Random(number)
        mine = 0
        try:
            with connect(scratch_db) as conn:
                while mine < TOTAL // WRITERS:
                    try:
                        with db.committing(conn):  # sequenced after its commit
                            if rng.random() < 0.3:
                                time.sleep(rng.random() / 2000)  # work before the append
                            events.append(
                                conn,
                                f"writer:{number}",
                                NewEvent(
                                    "v1.test.appended", "test", None, {"w": number, "n": mine}
                                ),
                            )
                            if rng.random() < 0.1:
                                raise Rollback
                            if rng.random() < 0.05:
                                time.sleep(rng.random() / 1000)  # commit late
                    except Rollback:
                        continue
                    with lock:
                        committed.append((number, mine))
                    mine += 1
        except BaseException as exc:
            failures.append(exc)

    seen: list[events.Event] = []

    def reader() -> None:
        try:
            with connect(scratch_db) as conn:
                since = 0
                while len(seen) < TOTAL:
                    batch = events.wait_for(conn, since, 500, 2.0)
                    seen.extend(batch)
                    if batch:
                        since = batch[-1].sequence
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    tail = threading.Thread(target=reader)
    tail.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    tail.join(60)
    assert not failures, failures
    assert len(committed) == TOTAL
    assert [e.sequence for e in seen] == list(range(1, TOTAL + 1)), "gapless and in order"
    assert sorted((e.payload["w"], e.payload["n"]) for e in seen) == sorted(committed), (
        "every committed event exactly once, no rolled-back one"
    )
    with connect(scratch_db) as conn:
        assert list(events.verify_chain(conn)) == []


def test_events_are_immutable_in_the_database(scratch_db: str) -> None:
    with connect(scratch_db) as conn:
        with db.committing(conn):
            events.append(conn, "t", NewEvent("v1.test.appended", "test", None, {"x": 1}))
        for statement in (
            "UPDATE events SET actor = 'mallory'",
            "DELETE FROM events",
            "TRUNCATE events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT actor FROM events").fetchone() == {"actor": "t"}


def test_an_insert_that_does_not_extend_the_head_is_refused(scratch_db: str) -> None:
    with connect(scratch_db) as conn:
        for sequence, prev in [(2, bytes(32)), (1, b"\x01" * 32)]:
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="gapless"):
                conn.execute(
                    "INSERT INTO events VALUES (%s, now(), 'v1.test.appended', 'test', NULL, 'x',"
                    " '\\xa0', %s, %s, %s)",
                    (sequence, bytes(32), prev, bytes(32)),
                )
        # one statement is checked whole: its first row extends the head, a later one does not
        two_rows = "INSERT INTO events VALUES" + ", ".join(
            ["(%s, now(), 'v1.test.appended', 'test', NULL, 'x', '\\xa0', %s, %s, %s)"] * 2
        )
        first = (1, bytes(32), bytes(32), b"\x01" * 32)  # extends the empty head
        for second in [(2, b"\x02" * 32), (3, b"\x01" * 32)]:  # unlinked; a gap
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="gapless"):
                conn.execute(two_rows, (*first, second[0], bytes(32), second[1], bytes(32)))
        assert conn.execute("SELECT count(*) AS n FROM events").fetchone() == {"n": 0}
        conn.execute(two_rows, (*first, 2, bytes(32), b"\x01" * 32, bytes(32)))
        head = conn.execute("SELECT last_sequence, last_digest FROM event_head").fetchone()
        assert head == {"last_sequence": 2, "last_digest": bytes(32)}


def test_an_edited_or_removed_row_breaks_the_chain(scratch_db: str) -> None:
    with connect(scratch_db) as conn:
        for i in range(5):
            with db.committing(conn):
                events.append(conn, "t", NewEvent("v1.test.appended", "test", None, {"i": i}))
        assert list(events.verify_chain(conn)) == []
        # a superuser can switch triggers off; the chain still tells
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE events SET payload = %s WHERE sequence = 3", (events.canonical_cbor({"i": 99}),)
        )
        problems = {(p.sequence, p.problem) for p in events.verify_chain(conn)}
        assert (3, "payload does not match its digest") in problems
        conn.execute("DELETE FROM events WHERE sequence = 4")
        problems = {(p.sequence, p.problem) for p in events.verify_chain(conn)}
        assert (4, "missing (next is 5)") in problems
        assert (5, "does not link to the previous event") in problems


def test_long_poll_wakes_within_100ms_of_a_commit_and_times_out_empty(scratch_db: str) -> None:
    delays = []
    with connect(scratch_db) as writer, connect(scratch_db) as waiter:
        for _ in range(20):
            head = events.read(waiter, 0, 1_000_000)
            since = head[-1].sequence if head else 0
            woke: list[float] = []

            def wait(s: int = since, woke: list[float] = woke) -> None:
                found = events.wait_for(waiter, s, 10, 5.0)
                woke.append(time.monotonic())
                assert found

            t = threading.Thread(target=wait)
            t.start()
            time.sleep(0.05)
            with db.committing(writer):
                events.append(writer, "t", NewEvent("v1.test.appended", "test", None, {}))
            committed = time.monotonic()
            t.join(5)
            delays.append(woke[0] - committed)
        started = time.monotonic()
        assert events.wait_for(waiter, 10_000, 10, 0.5) == []
        elapsed = time.monotonic() - started
    assert max(delays) < 0.1, f"wake-up delays {sorted(delays)[-3:]}"
    assert 0.5 <= elapsed < 0.8
