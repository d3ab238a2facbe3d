"""The fault suite for tile and parse jobs (docs/reliability.md): a worker killed with
SIGKILL at each step boundary of a real job. The lease runs out, the sweeper re-signals,
the stack's own worker finishes the job: SUCCEEDED on the second attempt, nothing RUNNING
past its lease, and (for a slide) nothing left outside the prefix the slide serves."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import signal
import time
from typing import Any
from uuid import UUID

import psycopg
import pytest
import pyvips
import requests

from slipway import config, jobs, storage, sweeper, uploads
from tests.integration.conftest import library_settings
from tests.support import FIXTURES, run_in_child, settled_upload, wait_for

OWNER = "job-fault-tester"
WORKER_LEASE_SECONDS = 2

# job type → boundary → (module, attribute path) whose first call the worker dies at
BOUNDARIES = {
    "tile": {
        "claimed, nothing read": ("slipway.uploads", "ready_for"),
        "pyramid written, no descriptor": ("slipway.tilestore", "Writer.finish"),
        "descriptor written, success not recorded": ("slipway.jobs", "succeed"),
    },
    "parse": {
        "claimed, nothing read": ("slipway.uploads", "ready_for"),
        "Parquet written, success not recorded": ("slipway.jobs", "succeed"),
    },
}
CASES = [(kind, boundary) for kind, cases in BOUNDARIES.items() for boundary in cases]
TAKEN = 3  # the child's exit code when another worker had claimed the job first


def work_and_die(job_id: str, job_type: str, module: str, path: str) -> None:
    """Run in a child process: claim the job, run its real handler, SIGKILL ourselves at
    the boundary (lease held, no goodbye)."""
    os.environ["SLIPWAY_JOB_LEASE_SECONDS"] = str(WORKER_LEASE_SECONDS)
    config.settings.cache_clear()
    *owners, name = path.split(".")
    owner = functools.reduce(getattr, owners, importlib.import_module(module))
    setattr(owner, name, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    from slipway import tiling, worker
    from slipway.telemetry import parse

    job = jobs.claim(job_type, "fault-worker")
    if job is None:  # the stack's own worker, woken by its scheduled sweep, was first
        raise SystemExit(TAKEN)
    if str(job.id) != job_id:
        raise SystemExit(f"claimed {job.id}, not the test's job {job_id}")
    worker.run_one(job, tiling.run_job if job_type == "tile" else parse.run_job, "fault-worker")
    raise SystemExit(f"the job finished without reaching {module}.{path}")


def unsignalled_job(
    kind: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, jobs.Job]:
    """A ready upload whose job is queued but signalled to no worker."""
    if kind == "tile":
        data, name = pyvips.Image.black(600, 400).pngsave_buffer(), "s.png"
    else:
        data, name = (FIXTURES / "telemetry" / "sample_gnss_10hz.csv").read_bytes(), "t.csv"
    sha256 = hashlib.sha256(data).hexdigest()
    kind_of = "slide" if kind == "tile" else "telemetry"
    created = uploads.create(OWNER, uploads.NewUpload(kind_of, name, len(data), sha256=sha256))
    conn.execute(  # the stack's verifier backs off: this process verifies, unsignalled
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, 'job-fault-test', now() + interval '10 minutes')",
        (created["uploadId"],),
    )
    reply = requests.put(created["url"], data=data, headers=created["headers"], timeout=60)
    assert reply.status_code == 200, reply.text
    with monkeypatch.context() as patch:
        patch.setattr(uploads, "_holder", lambda: "job-fault-test")
        patch.setattr(jobs, "signal", lambda types: None)
        upload = uploads.verify(UUID(created["uploadId"]), "test")
    assert upload is not None and upload.state == "ready"
    with psycopg.connect(os.environ["DATABASE_URL"]) as c:
        row = c.execute("SELECT id FROM jobs WHERE upload_id = %s", (upload.id,)).fetchone()
    assert row is not None
    return created["uploadId"], jobs.get(row[0])


@pytest.mark.parametrize(("kind", "boundary"), CASES)
def test_a_worker_killed_at_each_step_boundary(
    kind: str, boundary: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, path = BOUNDARIES[kind][boundary]
    # The stack's scheduled sweep may signal the job before the child claims it: then the
    # scenario did not happen, and it is tried again with a new job.
    for _ in range(3):
        upload_id, job = unsignalled_job(kind, conn, monkeypatch)
        child = run_in_child(
            "tests.integration.test_job_faults.work_and_die", str(job.id), kind, module, path
        )
        if child.returncode != TAKEN:
            break
    else:
        pytest.fail("three times in a row another worker claimed the test's job first")
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert jobs.get(job.id).status == "RUNNING", "killed holding the lease"
    time.sleep(WORKER_LEASE_SECONDS + 0.5)
    with library_settings(SLIPWAY_NOTIFICATION_GRACE_SECONDS="0"):
        sweeper.run()  # the lease-expired job's type is signalled again

    def finished() -> jobs.Job | None:
        current = jobs.get(job.id)
        return current if current.status in ("SUCCEEDED", "FAILED") else None

    done = wait_for(finished, timeout=120, what=f"the {kind} job to finish after the kill")
    assert done.status == "SUCCEEDED", done.error
    assert done.attempt_count == 2
    running = conn.execute(
        "SELECT count(*) AS n FROM jobs WHERE status = 'RUNNING' AND lease_expires_at < now()"
    ).fetchone()
    assert running == {"n": 0}, "a job stayed RUNNING past its lease"
    if kind == "tile":
        prefix = conn.execute(
            "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
        ).fetchone()
        assert prefix is not None and prefix["tiles_prefix"]
        bucket = os.environ["SLIPWAY_TILES_BUCKET"]
        keys = [k for k, _, _ in storage.list_keys(bucket, storage.slide_prefix(UUID(upload_id)))]
        assert keys, "the slide has its tiles"
        stray = [k for k in keys if not k.startswith(prefix["tiles_prefix"])]
        assert stray == [], "the killed attempt's writes are gone"
    else:
        session = conn.execute(
            "SELECT status FROM telemetry_sessions WHERE upload_id = %s", (upload_id,)
        ).fetchone()
        assert session == {"status": "ready"}
    settled_upload(upload_id)  # still ready
