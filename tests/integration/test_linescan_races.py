"""Line-scan races, made deterministic: the second action runs at the exact point where
the first one is most exposed (inside its transaction, or between storing and settling)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Any

import psycopg
import pytest

from slipway import linescan, projections, storage
from slipway.config import settings
from slipway.errors import SlipwayError
from tests.support import wait_for


def _blocked_by(conn: psycopg.Connection[Any], holder: int, done: threading.Event) -> bool:
    """True once a session waits on a lock `holder` holds (or the racing call finished)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
        (holder,),
    ).fetchone()
    return done.is_set() or bool(row and row["n"])


def test_a_scan_keeps_the_owner_whose_first_put_created_it(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    scan, tile_a, tile_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    inside, release, b_done = threading.Event(), threading.Event(), threading.Event()
    real_record = projections.record
    held: list[int] = []  # the backend pid of alice's transaction

    def record_then_hold(c: Any, actor: str, *events: Any, **kw: Any) -> Any:
        recorded = real_record(c, actor, *events, **kw)
        if actor == "user:alice" and not held:  # alice's first transaction, not yet committed
            held.append(c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
            inside.set()
            assert release.wait(30), "the test never released the first PUT"
        return recorded

    monkeypatch.setattr(linescan, "record", record_then_hold)
    results: dict[str, Any] = {}

    def put(who: str, tile: uuid.UUID, body: bytes, done: threading.Event | None) -> None:
        try:
            results[who] = linescan.put_tile(who, scan, tile, body)
        except SlipwayError as exc:
            results[who] = exc
        finally:
            if done is not None:
                done.set()

    alice = threading.Thread(target=put, args=("alice", tile_a, b"alice's tile", None))
    alice.start()
    assert inside.wait(30)
    bob = threading.Thread(target=put, args=("bob", tile_b, b"bob's tile", b_done))
    bob.start()
    wait_for(lambda: _blocked_by(conn, held[0], b_done), timeout=30, what="bob to wait on alice")
    release.set()
    alice.join(30)
    bob.join(30)

    assert isinstance(results["alice"], dict) and results["alice"]["state"] == "ready"
    assert isinstance(results["bob"], SlipwayError), f"bob's PUT answered {results['bob']}"
    assert results["bob"].status == 404
    owner = conn.execute("SELECT owner FROM line_scans WHERE id = %s", (scan,)).fetchone()
    assert owner == {"owner": "alice"}
    assert linescan.get_tile("alice", scan, tile_a) == b"alice's tile"
    with pytest.raises(SlipwayError) as caught:
        linescan.get_tile("bob", scan, tile_a)
    assert caught.value.status == 404
    bob_rows = conn.execute(
        "SELECT count(*) AS n FROM line_scan_tiles WHERE tile_id = %s", (tile_b,)
    ).fetchone()
    assert bob_rows == {"n": 0}, "a refused PUT leaves no tile behind"


def test_two_puts_of_one_tile_with_different_bytes_never_disagree_with_storage(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second PUT runs whole between the first one's storage write and its `ready`."""
    scan, tile = uuid.uuid4(), uuid.uuid4()
    first, second = b"first bytes", b"second, other bytes"
    real_put = storage.put_bytes
    outcome: dict[str, Any] = {}

    def put_then_race(bucket: str, key: str, data: bytes, content_type: str) -> None:
        real_put(bucket, key, data, content_type)
        if data == first and "second" not in outcome:
            try:
                outcome["second"] = linescan.put_tile("owner", scan, tile, second)
            except SlipwayError as exc:
                outcome["second"] = exc

    monkeypatch.setattr(storage, "put_bytes", put_then_race)
    try:
        outcome["first"] = linescan.put_tile("owner", scan, tile, first)
    except SlipwayError as exc:
        outcome["first"] = exc

    row = conn.execute(
        "SELECT state, sha256, object_key FROM line_scan_tiles WHERE scan_id = %s", (scan,)
    ).fetchone()
    assert row is not None and row["state"] == "ready"
    stored = storage.read_bytes(settings().data_bucket, row["object_key"])
    assert hashlib.sha256(stored).digest() == bytes(row["sha256"]), "row and object disagree"
    assert linescan.get_tile("owner", scan, tile) == stored
    # exactly one PUT won; the other was told its bytes are not the tile's
    answers = {name: getattr(r, "status", 200) for name, r in outcome.items()}
    assert sorted(answers.values()) == [200, 409], answers
    winner = next(name for name, status in answers.items() if status == 200)
    assert stored == {"first": first, "second": second}[winner]
    assert outcome[winner]["sha256"] == bytes(row["sha256"]).hex()


def test_a_logged_second_scan_created_keeps_the_owner_live_and_in_replay(
    conn: psycopg.Connection[Any],
) -> None:
    """A log written before the claim lock may hold two `scan_created` for one scan: the
    live tables and a replay both keep the first owner."""
    from slipway import db
    from slipway.events import NewEvent
    from slipway.projections import replay

    scan = uuid.uuid4()
    for who in ("alice", "bob"):
        with db.transaction() as c:
            projections.record(
                c,
                f"user:{who}",
                NewEvent("v1.linescan.scan_created", "line_scan", scan, {"owner": who}),
            )
    owner = conn.execute("SELECT owner FROM line_scans WHERE id = %s", (scan,)).fetchone()
    assert owner == {"owner": "alice"}
    _, differences = replay.differences(conn)
    assert differences == [], differences[:3]
