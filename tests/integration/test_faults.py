"""The fault suite for uploads (issue 9; docs/reliability.md has the table): a verifier
killed with SIGKILL at each step boundary, Postgres restarted mid-verification, LocalStack
frozen mid-upload, notifications dropped, duplicated and reordered. Each case converges
(`ready`, or `failed` with a code), loses nothing, doubles nothing, and leaves no orphan
once the sweeper has run."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any
from uuid import UUID

import boto3
import psycopg
import pytest
import requests

from slipway import blobs, digests, storage, sweeper, uploads
from slipway.errors import SlipwayError
from slipway_local.processes import alive
from slipway_local.stack import Stack
from tests.integration.conftest import library_settings
from tests.support import MiB, run_cli, run_in_child, settled_upload, token, wait_for

OWNER = "fault-tester"
CHILD = "fault-child"
CHILD_LEASE_SECONDS = 2

# (module, attribute) whose first call the verifier dies at, named for the boundary
BOUNDARIES = {
    "holding the lease, before reading anything": ("slipway.storage", "head"),
    "hashed, before the copy": ("slipway.blobs", "store"),
    "copied, before recording": ("slipway.uploads", "record"),
    "recorded, before the incoming object is deleted": ("slipway.blobs", "ensure"),
    "all done but the job signal": ("slipway.jobs", "signal"),
}


def die_at(upload_id: str, module: str, name: str) -> None:
    """Run in a child process: verify the upload and SIGKILL ourselves at the boundary."""

    def die(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(importlib.import_module(module), name, die)
    uploads.VERIFY_LEASE_SECONDS = CHILD_LEASE_SECONDS
    uploads._holder = lambda: CHILD
    uploads.verify(UUID(upload_id), "fn:fault-child")
    raise SystemExit(f"verification finished without reaching {module}.{name}")


def create(data: bytes) -> dict[str, Any]:
    new = uploads.NewUpload(
        "telemetry", "f.csv", len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    return uploads.create(OWNER, new)


def put(created: dict[str, Any], data: bytes) -> None:
    reply = requests.put(created["url"], data=data, headers=created["headers"], timeout=60)
    assert reply.status_code == 200, reply.text


def reserve_for_child(conn: psycopg.Connection[Any], upload_id: str) -> None:
    """The stack's verifier backs off (a live lease), the child takes the lease over."""
    conn.execute(
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, %s, now() + interval '10 minutes')",
        (upload_id, CHILD),
    )


def sweep() -> None:
    with library_settings(SLIPWAY_NOTIFICATION_GRACE_SECONDS="0", SLIPWAY_ORPHAN_GRACE_SECONDS="0"):
        sweeper.run()


def converged(conn: psycopg.Connection[Any], created: dict[str, Any], data: bytes) -> None:
    """Ready with the right digests and bytes, one ready event, one job, and after a sweep
    no incoming object, no live lease, the blob recorded."""
    upload_id = created["uploadId"]

    upload = settled_upload(upload_id)
    assert upload.state == "ready", (upload.error_code, upload.error_message)
    assert upload.sha256 == hashlib.sha256(data).digest()
    assert storage.read_bytes(os.environ["SLIPWAY_DATA_BUCKET"], upload.blob_key) == data
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM events WHERE subject_id = %(id)s"
        "        AND event_type = 'v1.upload.ready') AS ready,"
        "       (SELECT count(*) FROM jobs WHERE upload_id = %(id)s) AS jobs",
        {"id": upload_id},
    ).fetchone()
    assert counts == {"ready": 1, "jobs": 1}
    sweep()
    reply = storage.client().list_object_versions(
        Bucket=os.environ["SLIPWAY_UPLOADS_BUCKET"], Prefix=upload.object_key
    )
    assert not reply.get("Versions") and not reply.get("DeleteMarkers"), "incoming orphan"
    lease = conn.execute(
        "SELECT holder FROM upload_checks WHERE upload_id = %s AND lease_expires_at > now()",
        (upload_id,),
    ).fetchone()
    assert lease is None, "a live lease outlived its verifier"
    assert blobs.audit().problems == []


@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_a_verifier_killed_at_each_step_boundary(
    boundary: str, conn: psycopg.Connection[Any]
) -> None:
    data = os.urandom(50_000)
    created = create(data)
    reserve_for_child(conn, created["uploadId"])
    put(created, data)
    module, name = BOUNDARIES[boundary]
    child = run_in_child(
        "tests.integration.test_faults.die_at", created["uploadId"], module, name, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    time.sleep(CHILD_LEASE_SECONDS + 0.5)  # the dead verifier's lease runs out
    sweep()  # a pending upload: verification requested again; a lost signal: sent again
    converged(conn, created, data)


def test_postgres_restarted_mid_verification(
    local_stack: Stack, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(40_000)
    created = create(data)
    conn.execute(
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, %s, now() + interval '10 minutes')",
        (created["uploadId"], CHILD),
    )
    put(created, data)
    real_store = blobs.store

    def store_then_restart(source: blobs.Source, found: digests.Digests) -> None:
        real_store(source, found)
        local_stack.cluster.stop()
        local_stack.cluster.start()

    monkeypatch.setattr(blobs, "store", store_then_restart)
    monkeypatch.setattr(uploads, "_holder", lambda: CHILD)
    monkeypatch.setattr(uploads, "VERIFY_LEASE_SECONDS", CHILD_LEASE_SECONDS)
    with pytest.raises((psycopg.OperationalError, SlipwayError)):  # the database went away
        uploads.verify(UUID(created["uploadId"]), "test")
    monkeypatch.undo()
    with psycopg.connect(
        local_stack.database_url, autocommit=True, row_factory=conn.row_factory
    ) as fresh:
        time.sleep(CHILD_LEASE_SECONDS + 0.5)
        sweep()
        converged(fresh, created, data)


def test_localstack_frozen_mid_upload(
    local_stack: Stack, stack: dict[str, str], tmp_path: Any
) -> None:
    """S3 stops answering (SIGSTOP) while the CLI sends parts, for a few seconds: the
    upload stalls, then finishes, and the upload settles ready."""
    data = os.urandom(24 * MiB)  # multipart in the test stack (5 MiB parts)
    path = tmp_path / "frozen.bin"
    path.write_bytes(data)
    env = os.environ | stack | {"SLIPWAY_TOKEN": token(OWNER), "XDG_STATE_HOME": str(tmp_path)}
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    upload = threading.Thread(
        target=lambda: result.setdefault(
            "cli", run_cli("upload", str(path), "--kind", "slide", env=env)
        )
    )
    pid = alive(local_stack.localstack.pid_file)
    assert pid is not None
    bucket = stack["SLIPWAY_UPLOADS_BUCKET"]
    before = {m for _, m, _ in storage.list_multipart_uploads(bucket, "incoming/")}
    upload.start()

    def sending() -> bool:
        for key, multipart_id, _ in storage.list_multipart_uploads(bucket, "incoming/"):
            if multipart_id not in before and storage.list_parts(bucket, key, multipart_id):
                return True
        return False

    wait_for(sending, timeout=60, interval=0.05, what="the first part to arrive")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(pid, signal.SIGCONT)
    upload.join(timeout=300)
    cli = result["cli"]
    assert cli.returncode == 0, cli.stderr
    upload_id = cli.stdout.strip().splitlines()[-1]
    upload = settled_upload(upload_id)
    assert upload.state == "ready"
    assert upload.sha256 == hashlib.sha256(data).digest()


def test_notifications_duplicated_and_reordered(conn: psycopg.Connection[Any]) -> None:
    """A verification request that arrives before the bytes, the real notification, and
    the same S3 event delivered twice more: one ready, one job."""
    sqs = boto3.client("sqs")
    queue = os.environ["SLIPWAY_UPLOAD_EVENTS_QUEUE_URL"]
    data = os.urandom(30_000)
    created = create(data)
    key = storage.incoming_key(UUID(created["uploadId"]))
    early = json.dumps({"verifyUpload": created["uploadId"]})
    sqs.send_message(QueueUrl=queue, MessageBody=early)  # before any byte is there
    time.sleep(1)
    assert uploads.load(UUID(created["uploadId"])).state == "pending"
    put(created, data)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": os.environ["SLIPWAY_UPLOADS_BUCKET"]},
                    "object": {"key": key, "size": len(data)},
                },
            }
        ]
    }
    for _ in range(2):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    converged(conn, created, data)
    time.sleep(2)  # the duplicates have been consumed by now: still one of each
    converged(conn, created, data)
