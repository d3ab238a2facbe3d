"""Group commit (docs/event-log.md#group-commit) on a real Postgres: the sequencer killed
mid-batch, sequencing that fails after a writer's commit, and two writers of one row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from slipway import db, events, logs, uploads
from slipway.events import NewEvent
from slipway.projections import record, replay


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT last_sequence FROM event_head").fetchone()
    assert row is not None
    return int(row["last_sequence"])


def inbox_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) AS n FROM event_inbox").fetchone()
    assert row is not None
    return int(row["n"])


SEQUENCER = textwrap.dedent(
    """
    import sys, psycopg
    from psycopg.rows import dict_row
    from slipway import events
    with psycopg.connect(sys.argv[1], autocommit=True, row_factory=dict_row) as conn:
        events.sequence(conn, batch=500)
    """
)


def test_a_sequencer_killed_mid_batch_loses_and_doubles_nothing(scratch_db: str) -> None:
    total = 40_000
    with connect(scratch_db) as conn:
        with conn.transaction():  # committed to the inbox, not sequenced (no `committing`)
            for i in range(total):
                events.append(conn, "t", NewEvent("v1.test.appended", "test", None, {"i": i}))
        assert head(conn) == 0 and inbox_size(conn) == total
        sequencer = subprocess.Popen([sys.executable, "-c", SEQUENCER, scratch_db])
        try:
            deadline = time.monotonic() + 60
            while head(conn) == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            os.kill(sequencer.pid, signal.SIGKILL)
            sequencer.wait()
        moved = head(conn)
        assert 0 < moved < total, f"the kill came after {moved} of {total} events"
        assert moved + inbox_size(conn) == total, "a killed batch is rolled back whole"

        assert events.sequence(conn) == total - moved  # restarted: the rest, once
        logged = events.read(conn, 0, total + 1)
        assert [e.sequence for e in logged] == list(range(1, total + 1))
        assert [e.payload["i"] for e in logged] == list(range(total)), "in inbox order"
        assert inbox_size(conn) == 0
        assert list(events.verify_chain(conn)) == []


def test_events_a_writer_could_not_sequence_are_moved_by_the_next_writer(
    scratch_db: str,
) -> None:
    with connect(scratch_db) as holder, connect(scratch_db) as first, connect(scratch_db) as nxt:
        first.execute("SET lock_timeout = '200ms'")
        with holder.transaction():
            holder.execute("SELECT * FROM event_head FOR UPDATE")  # a sequencer stuck
            with db.committing(first):  # its sequencing times out: logged, not raised
                events.append(first, "a", NewEvent("v1.test.appended", "test", None, {"n": 1}))
        assert head(nxt) == 0 and inbox_size(nxt) == 1, "committed, waiting in the inbox"
        with db.committing(nxt):
            events.append(nxt, "b", NewEvent("v1.test.appended", "test", None, {"n": 2}))
        assert [(e.sequence, e.actor) for e in events.read(nxt, 0, 10)] == [(1, "a"), (2, "b")]
        assert inbox_size(nxt) == 0


def attempted(scan: UUID, tile: UUID) -> NewEvent:
    return NewEvent("v1.linescan.tile_attempted", "line_scan_tile", tile, {"scanId": str(scan)})


def line_scan(owner: str = "t") -> UUID:
    scan = uuid4()
    with db.transaction() as conn:
        record(
            conn, owner, NewEvent("v1.linescan.scan_created", "line_scan", scan, {"owner": owner})
        )
    return scan


class Writer(threading.Thread):
    """A writer on a thread of its own; `finish` joins it and raises what it raised."""

    def __init__(self, actor: str, scan: UUID, tile: UUID) -> None:
        super().__init__()
        self.actor, self.scan, self.tile = actor, scan, tile
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with db.transaction() as conn:
                record(conn, self.actor, attempted(self.scan, self.tile))
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(10)
        assert not self.is_alive() and self.error is None, self.error


def test_a_writer_blocked_on_a_row_is_logged_after_the_writer_holding_it(
    on_scratch_db: str,
) -> None:
    """The second writer stamps its event first, then waits for the row: its inbox id, and
    so its place in the log, must still come after the first writer's."""
    scan, tile = line_scan(), uuid4()
    with db.transaction() as conn:
        record(conn, "t0", attempted(scan, tile))
    with db.transaction() as conn:
        conn.execute(
            "SELECT * FROM line_scan_tiles WHERE scan_id = %s AND tile_id = %s FOR UPDATE",
            (scan, tile),
        )
        second = Writer("t2", scan, tile)
        time.sleep(0.3)
        assert second.is_alive(), "the second writer waits for the row"
        record(conn, "t1", attempted(scan, tile))
    second.finish()
    with db.connect() as conn:
        logged = [e.actor for e in events.read(conn, 0, 100) if e.subject_id == tile]
        assert logged == ["t0", "t1", "t2"]
        tile_row = conn.execute("SELECT attempts FROM line_scan_tiles").fetchone()
        assert tile_row == {"attempts": 3}
        _, differences = replay.differences(conn)
    assert differences == []


def test_two_writers_creating_one_row_take_turns(on_scratch_db: str) -> None:
    """A row that is not there yet is locked by its key: without that, both writers would
    create it (attempts 1) while the log says 2."""
    scan, tile = line_scan(), uuid4()
    with db.transaction() as conn:
        record(conn, "t1", attempted(scan, tile))
        second = Writer("t2", scan, tile)
        time.sleep(0.3)
        assert second.is_alive(), "the second writer waits for the key"
    second.finish()
    with db.connect() as conn:
        tile_row = conn.execute("SELECT attempts FROM line_scan_tiles").fetchone()
        assert tile_row == {"attempts": 2}
        _, differences = replay.differences(conn)
    assert differences == []


def test_an_upload_created_while_the_turn_is_taken_still_names_its_request(
    on_scratch_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notification's verification logs under the request that created the upload, read
    # from `v1.upload.created`: that event may still wait in the inbox when it runs.
    monkeypatch.setattr(logs, "correlation_id", lambda: "request-1")
    with connect(on_scratch_db) as holder:
        holder.execute(events.SQL["lead"])  # another writer's turn, still going
        created = uploads.create("owner", uploads.NewUpload("slide", "a.svs", 10))
        upload_id = UUID(created["uploadId"])
        assert inbox_size(holder) == 1 and head(holder) == 0
        assert uploads._created_under(upload_id) == "request-1"
        holder.execute(events.SQL["end_turn"])
        events.sequence(holder)
        assert inbox_size(holder) == 0
        assert uploads._created_under(upload_id) == "request-1"
