"""The job queue under load and faults: real Postgres, real worker processes, a kill -9."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from slipway import db, jobs, worker
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.projections import record
from tests.integration.conftest import library_settings

JOBS = 2000
TYPE = "test-echo"
LEASE = 2


def handler(job: jobs.Job, lease: worker.Lease) -> list[NewEvent]:
    """Does what the payload says, so the test knows each job's right outcome."""
    what = job.payload["do"]
    if what == "permanent":
        raise SlipwayError(Code.CSV_BAD_VALUE, "bad input")
    if what == "transient_always" or (what == "transient_once" and job.attempt_count == 1):
        raise RuntimeError("flaky dependency")
    if what == "hang" and job.attempt_count == 1:
        time.sleep(300)  # killed here
    return []


def work(database_url: str, name: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        SLIPWAY_BACKOFF_BASE_SECONDS="0.05",
        SLIPWAY_JOB_LEASE_SECONDS=str(LEASE),
        SLIPWAY_DB_POOL_MAX="3",
    )
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 4:
        job = jobs.claim(TYPE, name)
        if job is None:
            time.sleep(0.05)
            continue
        idle_since = time.monotonic()
        worker.run_one(job, handler, name)


def plan(n: int) -> Iterator[str]:
    kinds = ["ok"] * 80 + ["transient_once"] * 6 + ["transient_always"] * 4 + ["permanent"] * 10
    for i in range(n):
        yield "hang" if i == n // 3 else kinds[i % len(kinds)]


def enqueue(payloads: list[str]) -> list[UUID]:
    ids = []
    with db.transaction() as conn:
        for what in payloads:
            new = jobs.queued(TYPE, "tester", None, {"do": what})
            record(conn, "test", new)
            assert new.subject_id is not None
            ids.append(new.subject_id)
    return ids


def rows(url: str, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def test_workers_killed_mid_job_lose_nothing_and_double_nothing(on_scratch_db: str) -> None:
    url = on_scratch_db
    payloads = list(plan(JOBS))
    enqueue(payloads)
    ctx = multiprocessing.get_context("spawn")
    procs = {f"w{i}": ctx.Process(target=work, args=(url, f"w{i}")) for i in range(4)}
    for p in procs.values():
        p.start()

    deadline = time.monotonic() + 60
    holder = None
    while holder is None and time.monotonic() < deadline:
        held = rows(
            url, "SELECT locked_by FROM jobs WHERE payload->>'do' = 'hang' AND status = 'RUNNING'"
        )
        holder = held[0]["locked_by"] if held else None
        time.sleep(0.05)
    assert holder, "a worker picked up the hanging job"
    victim = procs[holder].pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)  # mid-job, lease held, no goodbye
    procs["w4"] = ctx.Process(target=work, args=(url, "w4"))
    procs["w4"].start()

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        open_jobs = rows(url, "SELECT count(*) AS n FROM jobs WHERE status IN ('QUEUED','RUNNING')")
        if open_jobs[0]["n"] == 0:
            break
        time.sleep(0.5)
    for p in procs.values():
        p.join(30)

    final = {r["payload"]["do"] + ":" + str(r["id"]): r for r in rows(url, "SELECT * FROM jobs")}
    assert len(final) == JOBS
    expected = {
        "ok": ("SUCCEEDED", 1),
        "transient_once": ("SUCCEEDED", 2),
        "transient_always": ("FAILED", 3),
        "permanent": ("FAILED", 1),
        "hang": ("SUCCEEDED", 2),
    }
    wrong = [
        (k, r["status"], r["attempt_count"])
        for k, r in final.items()
        if (r["status"], r["attempt_count"]) != expected[k.split(":")[0]]
    ]
    assert not wrong, f"{len(wrong)} jobs ended wrong, e.g. {wrong[:5]}"
    assert all(
        r["last_error_code"] == "CSV_BAD_VALUE"
        for k, r in final.items()
        if k.startswith("permanent:")
    )

    endings = Counter(
        r["subject_id"]
        for r in rows(
            url,
            "SELECT subject_id FROM events WHERE event_type IN "
            "('v1.job.succeeded', 'v1.job.failed', 'v1.job.cancelled')",
        )
    )
    assert len(endings) == JOBS and set(endings.values()) == {1}, "each job ends exactly once"
    claims = Counter(
        r["subject_id"]
        for r in rows(url, "SELECT subject_id FROM events WHERE event_type = 'v1.job.claimed'")
    )
    assert all(claims[r["id"]] == r["attempt_count"] for r in final.values())
    reclaimed = rows(
        url,
        "SELECT payload FROM events WHERE event_type = 'v1.job.claimed' "
        "AND subject_id = (SELECT id FROM jobs WHERE payload->>'do' = 'hang')",
    )
    assert len(reclaimed) == 2


def test_a_claim_reads_the_oldest_job_from_the_index_whatever_the_queue_depth(
    on_scratch_db: str,
) -> None:
    enqueue(["ok"] * 3000)
    with psycopg.connect(on_scratch_db, autocommit=True) as conn:
        conn.execute("ANALYZE jobs")
        query = jobs.SQL["claim"].replace("%(type)s", "%s")
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, (TYPE,)).fetchone()
    assert plan is not None
    nodes = []
    stack = [plan[0][0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"])
        stack.extend(node.get("Plans", []))
    assert "Sort" not in nodes and "Seq Scan" not in nodes, nodes
    assert "Index Scan" in nodes, nodes


def test_claims_follow_creation_order_and_skip_locked_rows(on_scratch_db: str) -> None:
    first, second, third = enqueue(["ok", "ok", "ok"])
    with psycopg.connect(on_scratch_db) as holder:
        holder.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (first,))
        claimed = jobs.claim(TYPE, "w1")
        assert claimed is not None and claimed.id == second, "the locked oldest is skipped"
    claimed = jobs.claim(TYPE, "w1")
    assert claimed is not None and claimed.id == first
    claimed = jobs.claim(TYPE, "w1")
    assert claimed is not None and claimed.id == third
    assert jobs.claim(TYPE, "w1") is None


def test_a_retry_waits_for_its_backoff(on_scratch_db: str) -> None:
    with library_settings(SLIPWAY_BACKOFF_BASE_SECONDS="1.5"):
        (job_id,) = enqueue(["transient_always"])
        job = jobs.claim(TYPE, "w1")
        assert job is not None
        assert jobs.fail(job, "w1", SlipwayError(Code.TRANSIENT, "x", permanent=False)) == "QUEUED"
        assert jobs.claim(TYPE, "w1") is None, "not before next_retry_at"
        again = None
        deadline = time.monotonic() + 5
        while again is None and time.monotonic() < deadline:
            again = jobs.claim(TYPE, "w1")
            time.sleep(0.1)
        assert again is not None and again.id == job_id and again.attempt_count == 2


def test_a_job_whose_workers_keep_dying_fails_as_worker_lost(on_scratch_db: str) -> None:
    (job_id,) = enqueue(["ok"])
    for attempt in (1, 2, 3):
        job = jobs.claim(TYPE, f"dies-{attempt}", lease_seconds=1)
        assert job is not None and job.attempt_count == attempt
        time.sleep(1.1)  # the lease runs out: nobody heartbeats
    assert jobs.claim(TYPE, "survivor") is None
    final = jobs.get(job_id)
    assert final.status == "FAILED" and final.last_error_code == "WORKER_LOST"


def test_a_worker_that_lost_its_lease_cannot_record_an_outcome(on_scratch_db: str) -> None:
    enqueue(["ok"])
    slow = jobs.claim(TYPE, "slow", lease_seconds=1)
    assert slow is not None
    time.sleep(1.1)
    fast = jobs.claim(TYPE, "fast")
    assert fast is not None and fast.attempt_count == 2
    assert jobs.succeed(slow, "slow") is False, "the late worker's result is discarded"
    assert jobs.heartbeat(slow, "slow") is False
    assert jobs.succeed(fast, "fast") is True


def test_only_queued_or_running_jobs_of_your_own_can_be_cancelled(on_scratch_db: str) -> None:
    queued_id, running_id = enqueue(["ok", "ok"])
    running = jobs.claim(TYPE, "w1")
    assert running is not None
    target = queued_id if running.id == running_id else running_id
    other = running.id
    with pytest.raises(SlipwayError) as caught:
        jobs.cancel(target, "someone-else")
    assert caught.value.status == 404
    assert jobs.cancel(target, "tester").status == "CANCELLED"
    asked = jobs.cancel(other, "tester")  # running: it stops at its next checkpoint
    assert asked.status == "RUNNING" and asked.cancel_requested_at is not None
    assert jobs.succeed(running, "w1") is False
    assert jobs.get(other).status == "CANCELLED"
    for ended in (target, other):
        with pytest.raises(SlipwayError) as caught:
            jobs.cancel(ended, "tester")
        assert caught.value.status == 409
    with pytest.raises(SlipwayError):
        jobs.cancel(uuid4(), "tester")


def test_heartbeats_carry_the_progress_a_handler_reports(on_scratch_db: str) -> None:
    (job_id,) = enqueue(["ok"])

    def slow(job: jobs.Job, lease: worker.Lease) -> list[NewEvent]:
        lease.progress["tiles"] = 512
        time.sleep(1.6)  # lease of 3 s: a heartbeat every second
        return []

    with library_settings(SLIPWAY_JOB_LEASE_SECONDS="3"):
        job = jobs.claim(TYPE, "w1")
        assert job is not None
        assert worker.run_one(job, slow, "w1") == "SUCCEEDED"
    final = jobs.get(job_id)
    assert final.progress == {"tiles": 512}
    assert final.to_api()["progress"] == {"tiles": 512}
