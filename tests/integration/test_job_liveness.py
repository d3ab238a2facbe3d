"""Liveness out of the log: heartbeats renew the lease and report progress with a plain
row update; only status changes are events, and replay still explains every row."""

from __future__ import annotations

import time
from datetime import datetime

from slipway import db, jobs
from slipway.projections import record, replay
from slipway.projections.projectors import LIVENESS

TYPE = "test-liveness"
BEATS = 25


def _enqueue() -> None:
    with db.transaction() as conn:
        record(conn, "test", jobs.queued(TYPE, "tester", None, {}))


def _events() -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) AS n FROM events").fetchone()
    assert row is not None
    return int(row["n"])


def _lease(job: jobs.Job) -> datetime:
    lease = jobs.get(job.id).lease_expires_at
    assert lease is not None
    return lease


def _differences() -> list[replay.Difference]:
    with db.connect() as conn:
        return replay.differences(conn)[1]


def test_heartbeats_append_no_event_and_replay_still_explains_the_tables(
    on_scratch_db: str,
) -> None:
    _enqueue()
    job = jobs.claim(TYPE, "w1", lease_seconds=60)
    assert job is not None
    before, first_lease = _events(), _lease(job)
    for beat in range(BEATS):
        assert jobs.heartbeat(job, "w1", lease_seconds=600, progress={"tiles": beat})
    assert _events() == before, "a heartbeat is not an event"
    live = jobs.get(job.id)
    assert live.progress == {"tiles": BEATS - 1}
    assert _lease(job) > first_lease, "the lease was renewed"
    assert jobs.heartbeat(job, "w1"), "a beat without progress keeps the last one"
    assert jobs.get(job.id).progress == {"tiles": BEATS - 1}
    assert live.updated_at == job.updated_at, "updated_at is the last status change"
    assert _differences() == []

    assert jobs.succeed(job, "w1")
    assert _events() == before + 1  # v1.job.succeeded
    assert jobs.get(job.id).progress == {"tiles": BEATS - 1}, "the last report stays"
    assert _differences() == []


def test_the_diff_still_sees_a_tampered_job_column_that_is_not_liveness(
    on_scratch_db: str,
) -> None:
    _enqueue()
    job = jobs.claim(TYPE, "w1")
    assert job is not None
    assert "locked_by" not in LIVENESS["jobs"]
    with db.transaction() as conn:
        conn.execute("UPDATE jobs SET locked_by = 'intruder' WHERE id = %s", (job.id,))
    found = _differences()
    assert {(d.table, d.kind) for d in found} == {("jobs", "unexplained"), ("jobs", "missing")}


def test_a_lease_renewed_by_plain_updates_still_expires_and_is_reclaimed(
    on_scratch_db: str,
) -> None:
    _enqueue()
    job = jobs.claim(TYPE, "slow", lease_seconds=1)
    assert job is not None
    assert jobs.heartbeat(job, "slow", lease_seconds=60)
    time.sleep(1.1)  # past the claim's lease, inside the renewed one
    assert jobs.claim(TYPE, "fast") is None, "a renewed lease keeps the job"
    assert jobs.heartbeat(job, "slow", lease_seconds=1)
    time.sleep(1.1)  # nobody renews it now
    taken = jobs.claim(TYPE, "fast")
    assert taken is not None and taken.id == job.id and taken.attempt_count == 2
    assert jobs.heartbeat(job, "slow") is False, "the old attempt cannot renew"
    assert jobs.heartbeat(taken, "fast") is True
    assert jobs.succeed(taken, "fast")
    assert _differences() == []
