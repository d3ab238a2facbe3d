"""Uploads against the running test stack: real S3 notifications through SQS to the
upload_complete function, and this process calling the same library concurrently."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
import requests

from slipway import storage, sweeper, uploads
from slipway.errors import SlipwayError
from tests.integration.conftest import library_settings
from tests.support import MiB, wait_for

OWNER = "upload-tester"


def new_upload(data: bytes, *, declare: bool = True, kind: str = "slide") -> dict[str, Any]:
    return uploads.create(
        OWNER,
        uploads.NewUpload(
            kind=kind,
            filename="bytes.bin",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest() if declare else None,
        ),
    )


def put(created: dict[str, Any], data: bytes) -> requests.Response:
    return requests.put(created["url"], data=data, headers=created["headers"], timeout=30)


def state_of(upload_id: str) -> str:
    return uploads.load(UUID(upload_id)).state


def settled(upload_id: str) -> str:
    def state() -> str | None:
        current = state_of(upload_id)
        return None if current == "pending" else current

    return wait_for(state, timeout=30, what=f"upload {upload_id} to settle")


def events_of(conn: psycopg.Connection[Any], subject: str, kind: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM events WHERE subject_id = %s AND event_type = %s",
        (subject, kind),
    ).fetchone()
    return int(row["n"])  # type: ignore[index]


def jobs_for(conn: psycopg.Connection[Any], upload_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM jobs WHERE upload_id = %s", (upload_id,)
    ).fetchone()
    return int(row["n"])  # type: ignore[index]


def s3_event(upload_id: str, size: int) -> str:
    """The body S3 sends for a PUT (the same shape the real notification has)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": os.environ["SLIPWAY_UPLOADS_BUCKET"]},
                        "object": {"key": f"incoming/{upload_id}", "size": size},
                    },
                }
            ]
        }
    )


def test_duplicate_and_racing_notifications_settle_once(conn: psycopg.Connection[Any]) -> None:
    data = os.urandom(200_000)
    created = new_upload(data)
    upload_id = created["uploadId"]
    sqs = uploads._sqs()
    for _ in range(3):  # duplicates, queued before the real one is even sent
        sqs.send_message(
            QueueUrl=os.environ["SLIPWAY_UPLOAD_EVENTS_QUEUE_URL"],
            MessageBody=s3_event(upload_id, len(data)),
        )
    assert put(created, data).status_code == 200
    racers = [
        threading.Thread(target=uploads.verify, args=(UUID(upload_id), "test")) for _ in range(4)
    ]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert settled(upload_id) == "ready"
    time.sleep(3)  # let every duplicate reach upload_complete
    assert events_of(conn, upload_id, "v1.upload.ready") == 1
    assert events_of(conn, upload_id, "v1.upload.failed") == 0
    assert jobs_for(conn, upload_id) == 1


def test_complete_before_and_after_the_notification_changes_nothing_twice(
    conn: psycopg.Connection[Any],
) -> None:
    data = os.urandom(50_000)
    early = new_upload(data)
    assert put(early, data).status_code == 200
    uploads.complete(UUID(early["uploadId"]), OWNER)  # races the notification
    late = new_upload(os.urandom(50_000), declare=False)
    assert put(late, os.urandom(50_000)).status_code == 200
    for created in (early, late):
        assert settled(created["uploadId"]) == "ready"
    before = events_of(conn, late["uploadId"], "v1.upload.ready")
    again = uploads.complete(UUID(late["uploadId"]), OWNER)  # after: a no-op
    assert again["state"] == "ready"
    time.sleep(2)
    for created in (early, late):
        assert events_of(conn, created["uploadId"], "v1.upload.ready") == 1
        assert jobs_for(conn, created["uploadId"]) == 1
    assert before == 1


def test_bytes_that_differ_from_the_declaration_fail_and_are_removed(
    conn: psycopg.Connection[Any],
) -> None:
    bucket = os.environ["SLIPWAY_UPLOADS_BUCKET"]
    # size: only a writer bypassing the signed URL can do this (S3 enforces it otherwise)
    created = new_upload(b"x" * 1000, declare=False)
    storage.client().put_object(
        Bucket=bucket, Key=f"incoming/{created['uploadId']}", Body=b"x" * 999
    )
    assert settled(created["uploadId"]) == "failed"
    upload = uploads.load(UUID(created["uploadId"]))
    assert upload.error_code == "SIZE_MISMATCH"
    assert storage.head(bucket, upload.object_key) is None

    # content: a multipart upload declared one SHA-256 and carries other bytes
    size = 9 * MiB
    created = new_upload(b"a" * size)  # declares the hash of 9 MiB of "a"
    assert created["method"] == "MULTIPART"
    upload_id = UUID(created["uploadId"])
    etags = []
    for part in created["parts"]:
        length = uploads.part_length(uploads.load(upload_id), part["partNumber"])
        reply = requests.put(part["url"], data=b"b" * length, timeout=30)
        assert reply.status_code == 200
        etags.append({"partNumber": part["partNumber"], "etag": reply.headers["ETag"]})
    uploads.complete(upload_id, OWNER, [(p["partNumber"], p["etag"]) for p in etags])
    assert settled(str(upload_id)) == "failed"
    upload = uploads.load(upload_id)
    assert upload.error_code == "CHECKSUM_MISMATCH"
    assert storage.head(bucket, upload.object_key) is None
    assert events_of(conn, str(upload_id), "v1.upload.failed") == 1


def test_the_same_bytes_twice_are_stored_once(conn: psycopg.Connection[Any]) -> None:
    data = os.urandom(300_000)
    first, second = new_upload(data), new_upload(data, declare=False)
    for created in (first, second):
        assert put(created, data).status_code == 200
    for created in (first, second):
        assert settled(created["uploadId"]) == "ready"
    a, b = (uploads.load(UUID(c["uploadId"])) for c in (first, second))
    assert a.sha256 == b.sha256 == hashlib.sha256(data).digest()
    assert sorted([a.deduplicated, b.deduplicated]) == [False, True]
    key = storage.blob_key(hashlib.sha256(data).digest())
    blob = conn.execute("SELECT * FROM blobs WHERE sha256 = %s", (a.sha256,)).fetchall()
    assert len(blob) == 1 and blob[0]["object_key"] == key
    assert storage.read_bytes(os.environ["SLIPWAY_DATA_BUCKET"], key) == data
    for upload in (a, b):
        assert storage.head(os.environ["SLIPWAY_UPLOADS_BUCKET"], upload.object_key) is None


@pytest.fixture
def notifications_lost() -> Iterator[None]:
    """The uploads bucket stops notifying (as if every message were lost), then recovers."""
    s3, bucket = storage.client(), os.environ["SLIPWAY_UPLOADS_BUCKET"]
    reply = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved = {k: v for k, v in reply.items() if k != "ResponseMetadata"}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)  # type: ignore[arg-type]


def test_a_lost_notification_is_repaired_by_the_sweeper(notifications_lost: None) -> None:
    data = os.urandom(10_000)
    created = new_upload(data)
    assert put(created, data).status_code == 200
    time.sleep(2)
    assert state_of(created["uploadId"]) == "pending", "nothing told upload_complete"
    with library_settings(SLIPWAY_NOTIFICATION_GRACE_SECONDS="0"):
        report = sweeper.Report()
        sweeper.check_pending(report)
    assert report.verifications_requested >= 1
    assert settled(created["uploadId"]) == "ready"


def test_expired_and_abandoned_uploads_fail_and_multipart_is_aborted() -> None:
    bucket = os.environ["SLIPWAY_UPLOADS_BUCKET"]
    with library_settings(
        SLIPWAY_URL_TTL_SECONDS="1",
        SLIPWAY_MULTIPART_TTL_SECONDS="1",
        SLIPWAY_NOTIFICATION_GRACE_SECONDS="0",
    ):
        unused = new_upload(b"z" * 100)
        abandoned = new_upload(b"z" * (9 * MiB), declare=False)
        part = abandoned["parts"][0]
        assert requests.put(part["url"], data=b"z" * (5 * MiB), timeout=30).status_code == 200
        time.sleep(1.5)
        late = requests.put(unused["url"], data=b"z" * 100, headers=unused["headers"], timeout=30)
        assert late.status_code == 403, "S3 refuses an expired URL"
        report = sweeper.Report()
        sweeper.check_pending(report)
    assert uploads.load(UUID(unused["uploadId"])).error_code == "UPLOAD_EXPIRED"
    gone = uploads.load(UUID(abandoned["uploadId"]))
    assert gone.error_code == "UPLOAD_ABANDONED"
    assert storage.list_parts(bucket, gone.object_key, gone.multipart_id or "") == []
    open_ids = {m for _, m, _ in storage.list_multipart_uploads(bucket, "incoming/")}
    assert gone.multipart_id not in open_ids


def test_orphans_are_deleted_and_referenced_objects_kept() -> None:
    data_bucket = os.environ["SLIPWAY_DATA_BUCKET"]
    kept = os.urandom(1000)
    created = new_upload(kept)
    assert put(created, kept).status_code == 200
    assert settled(created["uploadId"]) == "ready"
    orphan = storage.blob_key(hashlib.sha256(b"nobody's").digest())
    storage.put_bytes(data_bucket, orphan, b"nobody's", "application/octet-stream")
    with library_settings(SLIPWAY_ORPHAN_GRACE_SECONDS="0"):
        report = sweeper.Report()
        sweeper.delete_orphans(report)
    assert storage.head(data_bucket, orphan) is None
    assert storage.head(data_bucket, storage.blob_key(hashlib.sha256(kept).digest())) is not None
    assert report.orphans_deleted >= 1


def test_bad_requests_write_nothing(conn: psycopg.Connection[Any]) -> None:
    before = conn.execute("SELECT count(*) AS n FROM uploads").fetchone()
    for bad in (uploads.NewUpload("slide", "a/b", 10), uploads.NewUpload("slide", "ok", 0)):
        with pytest.raises(SlipwayError):
            uploads.create(OWNER, bad)
    assert conn.execute("SELECT count(*) AS n FROM uploads").fetchone() == before


def test_complete_racing_a_finished_verification_reports_the_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """complete() reads `pending`, then the notification settles the upload and removes the
    incoming object before complete() looks for it: the answer is the settled upload."""
    data = os.urandom(1000)
    created = new_upload(data)
    assert put(created, data).status_code == 200
    settled(created["uploadId"])
    real_load = uploads.load
    calls = {"n": 0}

    def stale_then_fresh(upload_id: UUID, owner: str | None = None) -> uploads.Upload:
        calls["n"] += 1
        current = real_load(upload_id, owner)
        if calls["n"] == 1:  # the first read happened before the notification won
            return dataclasses.replace(current, state="pending")
        return current

    monkeypatch.setattr(uploads, "load", stale_then_fresh)
    assert uploads.complete(UUID(created["uploadId"]), OWNER)["state"] == "ready"
