"""Cancelling running jobs against the real stack (docs/jobs.md#cancelling-a-running-job):
the request is an event, the worker stops at its next checkpoint, removes what it wrote
and records the cancel itself; a dead worker's job ends CANCELLED at its lease's expiry;
nothing of a cancelled attempt is visible, and replay reproduces the tables."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import cbor2
import psycopg
import pytest
import pyvips

from slipway import db, jobs, storage, tiling, worker
from slipway.client import ApiError, Client
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.projections import record, replay
from slipway.telemetry import parse
from tests.integration.conftest import library_settings
from tests.integration.test_dispatch import ready_slide
from tests.integration.test_job_faults import unsignalled_job
from tests.support import SECRET, run_cli, wait_for


def event_types(conn: psycopg.Connection[Any], subject: Any) -> list[str]:
    rows = conn.execute(
        "SELECT event_type FROM events WHERE subject_id = %s ORDER BY sequence", (subject,)
    )
    return [r["event_type"] for r in rows]


def no_replay_differences(conn: psycopg.Connection[Any]) -> None:
    _, differences = replay.differences(conn)
    assert differences == [], differences[:3]


def queue_job(owner: str, job_type: str, upload_id: UUID | None = None, **payload: Any) -> UUID:
    """A job of a type no stack worker takes, in a transaction of its own."""
    with db.transaction() as conn:
        event = jobs.queued(job_type, owner, upload_id, payload)
        record(conn, "test", event)
    assert event.subject_id is not None
    return event.subject_id


class Running:
    """`worker.run_one` of a claimed job on a thread, as a worker function runs it."""

    def __init__(self, job: jobs.Job, handler: worker.Handler, name: str = "test-worker"):
        self.status: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(job, handler, name))
        self._thread.start()

    def _run(self, job: jobs.Job, handler: worker.Handler, name: str) -> None:
        try:
            self.status = worker.run_one(job, handler, name)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 60) -> str | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def quick_looks() -> Iterator[None]:
    """This process's workers look for a cancel every 0.2 s (the stack's: TUNING)."""
    with library_settings(SLIPWAY_JOB_CANCEL_POLL_SECONDS="0.2"):
        yield


# the rules, on the API -------------------------------------------------------------------


def test_cancel_answers_200_when_queued_202_when_running_and_409_once_ended(
    client_for: Callable[..., Client], conn: psycopg.Connection[Any]
) -> None:
    owner = f"canceller-{uuid.uuid4().hex[:8]}"
    alice = client_for(owner)
    kind = f"test-cancel-{uuid.uuid4().hex[:6]}"
    waiting, running_id = queue_job(owner, kind), queue_job(owner, kind)

    reply = alice.session.post(f"{alice.base_url}/v1/jobs/{waiting}/cancel", timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "CANCELLED" and reply.json()["cancelRequestedAt"] is None

    job = jobs.claim(kind, "w1")
    assert job is not None and job.id == running_id
    reply = alice.session.post(f"{alice.base_url}/v1/jobs/{running_id}/cancel", timeout=30)
    assert reply.status_code == 202, reply.text
    asked = reply.json()
    assert asked["status"] == "RUNNING" and asked["cancelRequestedAt"], asked
    again = alice.session.post(f"{alice.base_url}/v1/jobs/{running_id}/cancel", timeout=30)
    assert again.status_code == 202 and again.json() == asked, "the first request stands"
    assert alice.job(str(running_id))["cancelRequestedAt"] == asked["cancelRequestedAt"]

    assert jobs.heartbeat(job, "w1"), "still this worker's while it stops"
    assert jobs.renew(job, "w1") == jobs.Beat(cancel_requested=True)
    assert jobs.watch(job, "w1") == jobs.Beat(cancel_requested=True)
    assert jobs.succeed(job, "w1") is False, "never SUCCEEDED after a cancel was requested"
    ended = alice.job(str(running_id))
    assert ended["status"] == "CANCELLED" and ended["finishedAt"], ended
    assert event_types(conn, running_id) == [
        "v1.job.queued",
        "v1.job.claimed",
        "v1.job.cancel_requested",
        "v1.job.cancelled",
    ]
    for ended_id in (waiting, running_id):
        with pytest.raises(ApiError) as refused:
            alice.cancel_job(str(ended_id))
        assert (refused.value.status, refused.value.code) == (409, Code.JOB_NOT_CANCELLABLE)
    with pytest.raises(ApiError) as foreign:
        client_for("someone-else").cancel_job(str(waiting))
    assert foreign.value.status == 404

    retried = alice.retry_job(str(running_id))  # a cancelled job can run again, afresh
    assert (retried["status"], retried["cancelRequestedAt"]) == ("QUEUED", None)
    no_replay_differences(conn)


def test_a_failure_after_a_cancel_request_ends_cancelled_not_retried(
    conn: psycopg.Connection[Any],
) -> None:
    kind = f"test-cancel-fail-{uuid.uuid4().hex[:6]}"
    job_id = queue_job("tester", kind)
    job = jobs.claim(kind, "w1")
    assert job is not None
    with db.transaction() as c:
        jobs.request_cancel(c, job_id, "tester")
    error = worker.public_error(RuntimeError("flaky"))
    assert jobs.fail(job, "w1", error) == "CANCELLED"
    assert jobs.get(job_id).status == "CANCELLED"


def test_a_dead_workers_cancelled_job_ends_cancelled_when_its_lease_expires(
    conn: psycopg.Connection[Any],
) -> None:
    kind = f"test-cancel-dead-{uuid.uuid4().hex[:6]}"
    job_id = queue_job("tester", kind)
    zombie = jobs.claim(kind, "dead", lease_seconds=1)
    assert zombie is not None
    with db.transaction() as c:
        asked = jobs.request_cancel(c, job_id, "tester", actor="operator:ops")
    assert asked.status == "RUNNING" and asked.cancel_requested_by == "tester"
    time.sleep(1.2)  # the worker died holding it: nobody renews the lease
    assert jobs.claim(kind, "next") is None, "cancelled at the claim, not run again"
    ended = jobs.get(job_id)
    assert (ended.status, ended.attempt_count) == ("CANCELLED", 1)
    row = conn.execute(
        "SELECT payload FROM events WHERE subject_id = %s AND event_type = 'v1.job.cancelled'",
        (job_id,),
    ).fetchone()
    assert row is not None
    assert cbor2.loads(row["payload"]) == {"by": "tester", "attempt": 1, "stop": "lease_expired"}
    assert jobs.succeed(zombie, "dead") is False and jobs.heartbeat(zombie, "dead") is False
    assert jobs.get(job_id).status == "CANCELLED", "the late worker changes nothing"
    no_replay_differences(conn)


def test_request_cancel_is_generic_and_a_cascade_can_skip_ended_jobs(
    conn: psycopg.Connection[Any],
) -> None:
    kind = f"test-cancel-cascade-{uuid.uuid4().hex[:6]}"
    done, running, waiting = (queue_job("tester", kind) for _ in range(3))
    first = jobs.claim(kind, "w1")
    assert first is not None and first.id == done and jobs.succeed(first, "w1")
    second = jobs.claim(kind, "w2")
    assert second is not None and second.id == running
    with db.transaction() as c:  # one transaction, as a fan-out parent's cancel would
        outcome = {
            j: jobs.request_cancel(c, j, "tester", strict=False).status
            for j in (done, waiting, running)
        }
    assert outcome == {done: "SUCCEEDED", waiting: "CANCELLED", running: "RUNNING"}
    assert jobs.get(running).cancel_requested_at is not None
    with db.transaction() as c, pytest.raises(SlipwayError) as strict:
        jobs.request_cancel(c, done, "tester")
    assert (strict.value.status, strict.value.code) == (409, Code.JOB_NOT_CANCELLABLE)
    # its worker stops and records the cancel (no job of this test outlives its lease)
    assert jobs.record_cancelled(second, "w2")
    assert jobs.get(running).status == "CANCELLED"


# tile ----------------------------------------------------------------------------------


def big_slide(path: Path, side: int = 18000) -> Path:
    """A slide that takes the stack's worker well over ten seconds to tile."""
    if not path.exists():
        noise = pyvips.Image.perlin(side, side, cell_size=512, uchar=True)
        noise.bandjoin([noise, noise]).copy(interpretation="srgb").jpegsave(str(path), Q=70)
    return path


def test_a_running_tile_job_cancelled_mid_way_ends_cancelled_with_no_pyramid(
    stack: dict[str, str],
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    user = f"tile-canceller-{uuid.uuid4().hex[:8]}"
    alice = client_for(user)
    upload_id = alice.upload_file(big_slide(tmp_path / "big.jpg"), "slide")

    def tiling_under_way() -> dict[str, Any] | None:
        listed = alice.jobs(upload_id=upload_id)["jobs"]
        job = listed[0] if listed else None
        if job and job["status"] not in ("QUEUED", "RUNNING"):
            pytest.fail(f"the tile job ended before it could be cancelled: {job}")
        return job if job and (job["progress"] or {}).get("tiles") else None

    job = wait_for(tiling_under_way, timeout=180, interval=0.2, what="tiles being written")
    env = {
        **os.environ,
        "SLIPWAY_API_URL": stack["SLIPWAY_API_URL"],
        "SLIPWAY_JWT_SECRET": SECRET,
        "SLIPWAY_USER": user,
        "SLIPWAY_ENV_FILE": "/nonexistent",
    }
    env.pop("SLIPWAY_TOKEN", None)
    done = run_cli("jobs", "cancel", job["jobId"], env=env)  # the CLI, for a running job
    assert done.returncode == 0, done.stderr
    assert '"status": "RUNNING"' in done.stdout and '"cancelRequestedAt": "' in done.stdout

    ended = alice.wait_until(
        lambda: alice.job(job["jobId"]), lambda j: j["status"] != "RUNNING", timeout=60
    )
    assert ended["status"] == "CANCELLED", ended
    assert ended["progress"]["tiles"] > 0, "it was cancelled mid-way"
    slide = alice.slide(upload_id)
    assert slide["status"] != "SUCCEEDED" and slide["dziUrl"] is None, slide
    assert (slide["status"], slide["error"]["code"]) == ("FAILED", "CANCELLED"), slide
    assert (
        conn.execute("SELECT 1 FROM slides WHERE upload_id = %s", (upload_id,)).fetchone() is None
    )
    bucket = stack["SLIPWAY_TILES_BUCKET"]
    prefix = f"{storage.slide_prefix(UUID(upload_id))}{job['jobId']}/"
    assert list(storage.list_keys(bucket, prefix)) == [], "no object of the attempt is left"
    assert list(storage.list_multipart_uploads(bucket, prefix)) == [], "nor an upload"
    assert event_types(conn, UUID(job["jobId"]))[-2:] == [
        "v1.job.cancel_requested",
        "v1.job.cancelled",
    ]
    with pytest.raises(ApiError) as refused:
        alice.cancel_job(job["jobId"])
    assert refused.value.status == 409
    no_replay_differences(conn)


def test_a_cancel_requested_as_tiling_ends_still_leaves_nothing_visible(
    client_for: Callable[..., Client], conn: psycopg.Connection[Any], quick_looks: None
) -> None:
    """The cancel arrives after the last checkpoint, as the pyramid is complete: `succeed`
    records CANCELLED instead, and the attempt's pyramid (its .dzi too) is removed."""
    owner = f"late-canceller-{uuid.uuid4().hex[:8]}"
    upload_id = UUID(ready_slide(client_for(owner)))
    served = conn.execute(
        "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
    ).fetchone()
    kind = f"test-tile-cancel-{uuid.uuid4().hex[:6]}"
    job_id = queue_job(owner, kind, upload_id)
    job = jobs.claim(kind, "late")
    assert job is not None

    def tile_then_be_cancelled(job: jobs.Job, lease: worker.Lease) -> list[NewEvent]:
        results = tiling.run_job(job, lease)
        with db.transaction() as c:
            jobs.request_cancel(c, job.id, owner)
        return results

    assert worker.run_one(job, tile_then_be_cancelled, "late") == "CANCELLED"
    assert jobs.get(job_id).status == "CANCELLED"
    bucket = os.environ["SLIPWAY_TILES_BUCKET"]
    assert list(storage.list_keys(bucket, f"slides/{upload_id}/{job_id}/")) == []
    after = conn.execute(
        "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
    ).fetchone()
    assert after == served, "the slide still serves the earlier pyramid"
    no_replay_differences(conn)


# parse ---------------------------------------------------------------------------------


def claimed_parse_job(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, jobs.Job]:
    upload_id, queued = unsignalled_job("parse", conn, monkeypatch)
    job = jobs.claim("parse", "test-parser")
    assert job is not None and job.id == queued.id, "claimed another parse job"
    return upload_id, job


def session_of(conn: psycopg.Connection[Any], upload_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, status, failure_code FROM telemetry_sessions WHERE upload_id = %s",
        (upload_id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def parquet_keys(session_id: UUID) -> list[str]:
    bucket = os.environ["SLIPWAY_DATA_BUCKET"]
    return [k for k, _, _ in storage.list_keys(bucket, f"telemetry/{session_id}/")]


def test_a_running_parse_job_cancelled_between_row_batches_writes_no_parquet(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch, quick_looks: None
) -> None:
    upload_id, job = claimed_parse_job(conn, monkeypatch)
    read = parse.READERS["csv"]
    first_batch = threading.Event()

    def slow_reader(stream: Any, sink: Any) -> Iterator[Any]:  # a very long file, say
        for batch in read(stream, sink):
            yield batch
            first_batch.set()
            for _ in range(300):  # 30 s more of (empty) row batches
                time.sleep(0.1)
                yield batch.slice(0, 0)

    monkeypatch.setitem(parse.READERS, "csv", slow_reader)
    started = time.monotonic()
    running = Running(job, parse.run_job, "test-parser")
    assert first_batch.wait(60), "the parse never got to its rows"
    with db.transaction() as c:
        assert jobs.request_cancel(c, job.id, "tester").status == "RUNNING"
    assert running.join(timeout=60) == "CANCELLED"
    assert time.monotonic() - started < 30, "stopped at its next checkpoint, not at the end"
    session = session_of(conn, upload_id)
    assert (session["status"], session["failure_code"]) == ("failed", "CANCELLED")
    assert parquet_keys(session["id"]) == [], "no session Parquet"
    assert (
        conn.execute(
            "SELECT 1 FROM telemetry_streams WHERE session_id = %s", (session["id"],)
        ).fetchone()
        is None
    )
    no_replay_differences(conn)


def test_a_parse_cancelled_while_uploading_its_parquet_removes_it(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id, job = claimed_parse_job(conn, monkeypatch)
    upload = storage.upload_file

    def upload_then_be_cancelled(path: str, bucket: str, key: str, *args: Any) -> Any:
        done = upload(path, bucket, key, *args)
        if jobs.get(job.id).cancel_requested_at is None:
            with db.transaction() as c:  # after the last checkpoint
                jobs.request_cancel(c, job.id, "tester")
        return done

    monkeypatch.setattr(storage, "upload_file", upload_then_be_cancelled)
    assert worker.run_one(job, parse.run_job, "test-parser") == "CANCELLED"
    session = session_of(conn, upload_id)
    assert (session["status"], session["failure_code"]) == ("failed", "CANCELLED")
    assert parquet_keys(session["id"]) == [], "the uploaded Parquet is removed"
    no_replay_differences(conn)
