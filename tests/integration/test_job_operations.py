"""Job operations against the real stack: the owner's list (filters, pages), retry of a
failed or cancelled job (a fresh attempt budget, run again, replayable), and the CLI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
import pyvips

from slipway import db, jobs
from slipway.client import ApiError, Client
from slipway.errors import Code
from slipway.projections import record, replay
from tests.support import SECRET, run_cli


def queue_job(owner: str, job_type: str, upload_id: UUID | None = None) -> str:
    """A job no worker takes (its type has no queue), in a transaction of its own."""
    with db.transaction() as conn:
        event = jobs.queued(job_type, owner, upload_id, {})
        record(conn, "test", event)
    return str(event.subject_id)


def test_the_list_filters_pages_newest_first_and_shows_only_the_owners_jobs(
    stack: dict[str, str], client_for: Callable[..., Client]
) -> None:
    owner, kind = f"lister-{uuid.uuid4().hex[:8]}", "test-list"
    made = [queue_job(owner, kind) for _ in range(3)]
    other = queue_job(owner, "test-list-other")
    upload = uuid.uuid4()
    of_upload = queue_job(owner, kind, upload)
    jobs.cancel(UUID(made[0]), owner)
    alice = client_for(owner)

    first = alice.jobs(job_type=kind, limit=2)
    assert [j["jobId"] for j in first["jobs"]] == [of_upload, made[2]], "newest first"
    assert first["next"]
    second = alice.jobs(job_type=kind, limit=2, cursor=first["next"])
    assert [j["jobId"] for j in second["jobs"]] == [made[1], made[0]]
    assert second["next"] is None
    assert second["jobs"][1] == alice.job(made[0]), "each job as GET /v1/jobs/{id} shows it"

    everything = alice.jobs()
    assert [j["jobId"] for j in everything["jobs"]] == [of_upload, other, *reversed(made)]
    assert everything["next"] is None
    assert [j["jobId"] for j in alice.jobs(status="CANCELLED")["jobs"]] == [made[0]]
    assert [j["jobId"] for j in alice.jobs(upload_id=str(upload))["jobs"]] == [of_upload]
    assert [j["jobId"] for j in alice.jobs(job_type="test-list-other")["jobs"]] == [other]
    assert alice.jobs(job_type=kind, status="FAILED") == {"jobs": [], "next": None}

    stranger = client_for(f"stranger-{uuid.uuid4().hex[:8]}")
    assert stranger.jobs() == {"jobs": [], "next": None}
    assert stranger.jobs(upload_id=str(upload)) == {"jobs": [], "next": None}
    with pytest.raises(ApiError) as foreign:
        stranger.retry_job(made[0])
    assert (foreign.value.status, foreign.value.code) == (404, "NOT_FOUND")

    for cursor in ("made-up", "W10=", "WyJ4IiwgInkiXQ==", "WyIyMDI2LTAxLTAxIiwgIngiXQ=="):
        with pytest.raises(ApiError) as bad:
            alice.jobs(cursor=cursor)
        assert (bad.value.status, bad.value.code) == (400, "BAD_REQUEST"), cursor
    for params in ({"limit": 0}, {"limit": 101}, {"status": "DONE"}, {"uploadId": "x"}):
        with pytest.raises(ApiError) as invalid:
            alice.call("GET", "/v1/jobs", **params)
        assert invalid.value.status == 400, params


def test_a_failed_tile_job_retried_runs_again_and_replay_reproduces_it(
    stack: dict[str, str], conn: psycopg.Connection[Any], client_for: Callable[..., Client]
) -> None:
    alice = client_for(f"retrier-{uuid.uuid4().hex[:8]}")
    gif = pyvips.Image.gaussnoise(300, 200).cast("uchar").gifsave_buffer()
    upload_id = alice.upload_bytes("slide", "slide.gif", gif, "image/jpeg")["uploadId"]

    def failed() -> dict[str, Any]:
        slide = alice.wait_until(
            lambda: alice.slide(upload_id),
            lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
            timeout=120,
        )
        assert slide["status"] == "FAILED", slide
        return alice.job(slide["jobId"])

    before = failed()
    assert (before["status"], before["attemptCount"]) == ("FAILED", 1)
    assert before["error"]["code"] == Code.IMAGE_UNSUPPORTED
    [listed] = alice.jobs(upload_id=upload_id)["jobs"]
    assert listed["jobId"] == before["jobId"] and listed["status"] == "FAILED"

    requeued = alice.retry_job(before["jobId"])
    assert requeued["status"] == "QUEUED" and requeued["attemptCount"] == 0
    assert requeued["error"] is None and requeued["finishedAt"] is None
    assert requeued["nextRetryAt"] is None, "due now"
    assert requeued["maxAttempts"] == before["maxAttempts"]

    after = alice.wait_until(
        lambda: alice.job(before["jobId"]), lambda j: j["status"] == "FAILED", timeout=120
    )
    assert after["attemptCount"] == 1, "a fresh budget, and it ran once more"
    assert after["error"]["code"] == Code.IMAGE_UNSUPPORTED, after
    assert after["finishedAt"] > before["finishedAt"]
    types = [
        r["event_type"]
        for r in conn.execute(
            "SELECT event_type FROM events WHERE subject_id = %s ORDER BY sequence",
            (UUID(before["jobId"]),),
        )
    ]
    assert types == [
        "v1.job.queued",
        "v1.job.claimed",
        "v1.job.failed",
        "v1.job.requeued",
        "v1.job.claimed",
        "v1.job.failed",
    ]

    stats, differences = replay.differences(conn)
    assert differences == [], differences[:3]
    assert stats.events >= len(types)


def test_only_failed_or_cancelled_jobs_are_retried(
    stack: dict[str, str], client_for: Callable[..., Client]
) -> None:
    owner = f"strict-{uuid.uuid4().hex[:8]}"
    alice = client_for(owner)
    done = queue_job(owner, "test-retry-done")
    claimed = jobs.claim("test-retry-done", "test-worker")
    assert claimed is not None and str(claimed.id) == done
    assert jobs.succeed(claimed, "test-worker")
    waiting = queue_job(owner, "test-retry-waiting")
    for job_id, status in ((done, "SUCCEEDED"), (waiting, "QUEUED")):
        with pytest.raises(ApiError) as refused:
            alice.retry_job(job_id)
        assert (refused.value.status, refused.value.code) == (409, Code.JOB_NOT_RETRYABLE)
        assert status in refused.value.message
        assert alice.job(job_id)["status"] == status, "left as it was"

    alice.cancel_job(waiting)
    again = alice.retry_job(waiting)
    assert (again["status"], again["attemptCount"], again["error"]) == ("QUEUED", 0, None)
    with pytest.raises(ApiError) as missing:
        alice.retry_job(str(uuid.uuid4()))
    assert missing.value.status == 404


def test_the_cli_lists_retries_and_cancels_jobs(api: str, tmp_path: Path) -> None:
    user = f"cli-jobs-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SLIPWAY_API_URL": api,
        "SLIPWAY_JWT_SECRET": SECRET,
        "SLIPWAY_USER": user,
        "XDG_STATE_HOME": str(tmp_path),
        "SLIPWAY_ENV_FILE": "/nonexistent",
    }
    env.pop("SLIPWAY_TOKEN", None)
    upload = uuid.uuid4()
    job_id = queue_job(user, "test-cli", upload)
    queue_job(user, "test-cli-other")

    def slipway(*args: str) -> tuple[int, str, str]:
        done = run_cli(*args, env=env)
        return done.returncode, done.stdout, done.stderr

    code, out, err = slipway("jobs", "ls", "--upload", str(upload))
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "TYPE", "STATUS", "ATTEMPTS", "UPLOAD", "CREATED", "ERROR"]
    assert len(rows) == 1 and rows[0].split()[:5] == [
        job_id,
        "test-cli",
        "QUEUED",
        "0/3",
        str(upload),
    ]

    code, out, err = slipway("jobs", "cancel", job_id)
    assert code == 0 and '"status": "CANCELLED"' in out, err
    code, out, err = slipway("jobs", "ls", "--status", "CANCELLED", "--type", "test-cli")
    assert code == 0 and [r.split()[0] for r in out.splitlines()[1:]] == [job_id], err
    code, out, err = slipway("jobs", "ls", "--type", "test-cli-other", "--status", "CANCELLED")
    assert code == 0 and out.splitlines()[1:] == [], out

    code, out, err = slipway("jobs", "retry", job_id)
    assert code == 0 and '"status": "QUEUED"' in out and '"attemptCount": 0' in out, err
    code, out, err = slipway("jobs", "retry", job_id)
    assert code == 2 and "JOB_NOT_RETRYABLE" in err, (code, out, err)
    code, out, err = slipway("jobs", "cancel", str(uuid.uuid4()))
    assert code == 2 and "NOT_FOUND" in err, (code, out, err)
