"""Job-queue robustness against the real stack: poison messages are dropped at once, job
errors show a stable code and no internals, a worker that lost its lease cannot change
what a slide serves."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import cbor2
import psycopg
import pytest
import requests

from slipway import db, jobs, storage, tilestore, tiling, worker
from slipway.client import Client
from slipway.projections import record
from tests.integration.conftest import library_settings
from tests.integration.test_dispatch import ready_slide
from tests.support import free_ports, wait_for


def in_queue(url: str) -> int:
    """Messages on the queue, visible or in flight (received, not yet deleted)."""
    attributes = jobs._sqs().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_malformed_messages_are_dropped_at_once_and_the_poller_keeps_working(
    client_for: Callable[..., Client],
) -> None:
    uploads_queue = os.environ["SLIPWAY_UPLOAD_EVENTS_QUEUE_URL"]
    tile_queue = os.environ["SLIPWAY_TILE_QUEUE_URL"]
    poison = [
        "not JSON {",
        "[1, 2]",
        '{"verifyUpload": "not-a-uuid"}',
        '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
        '{"Records": "none"}',
    ]
    for body in poison:
        jobs._sqs().send_message(QueueUrl=uploads_queue, MessageBody=body)
    jobs._sqs().send_message(QueueUrl=tile_queue, MessageBody="not JSON either")
    # The test stack's queues have a 5 s visibility timeout and dead-letter after 5
    # receives: a message that failed would be back in 5 s and on the queue for ~25 s.
    wait_for(
        lambda: in_queue(uploads_queue) == 0 and in_queue(tile_queue) == 0,
        timeout=15,
        what="the malformed messages to be consumed once and deleted",
    )
    # the same queues and functions still do their work
    upload_id = ready_slide(client_for("poison-user"))
    assert client_for("poison-user").slide(upload_id)["status"] == "SUCCEEDED"


def test_a_storage_failure_shows_a_stable_code_and_no_internals(
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = client_for("storage-user")
    upload_id = UUID(ready_slide(client))
    queued = jobs.queued("test-tile-storage", "storage-user", upload_id, {}, max_attempts=1)
    with db.transaction() as c:
        record(c, "test", queued)
    job = jobs.claim("test-tile-storage", "w-storage")
    assert job is not None and job.id == queued.subject_id
    (dead_port,) = free_ports(1)  # nothing listens there: storage is unreachable
    with (
        library_settings(AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{dead_port}"),
        caplog.at_level(logging.ERROR, logger="slipway.worker"),
    ):
        assert worker.run_one(job, tiling.run_job, "w-storage") == "FAILED"

    error = client.job(str(job.id))["error"]
    assert error["code"] == "STORAGE_FAILED"
    for internal in ("127.0.0.1", str(dead_port), "http", "Could not connect", "Error"):
        assert internal not in error["message"], error
    failed = conn.execute(
        "SELECT payload FROM events WHERE subject_id = %s AND event_type = 'v1.job.failed'",
        (job.id,),
    ).fetchone()
    assert failed is not None
    assert cbor2.loads(failed["payload"]) == error, "the log of events says the same"
    logged = [r for r in caplog.records if getattr(r, "job_id", None) == str(job.id)]
    assert logged and logged[0].exc_text and "Could not connect" in logged[0].exc_text, (
        "the raw exception is in the worker's log, with the job id"
    )


def test_a_worker_that_lost_its_lease_cannot_change_what_the_slide_serves(
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for("fence-user")
    upload_id = UUID(ready_slide(client))
    queued = jobs.queued("test-tile-fence", "fence-user", upload_id, {})  # a re-tile
    with db.transaction() as c:
        record(c, "test", queued)
    zombie = jobs.claim("test-tile-fence", "zombie", lease_seconds=1)
    assert zombie is not None
    time.sleep(1.1)  # the zombie's lease runs out (it is paused, say) ...
    winner = jobs.claim("test-tile-fence", "winner")  # ... and another worker takes over
    assert winner is not None and winner.attempt_count == 2
    bucket = os.environ["SLIPWAY_TILES_BUCKET"]
    zombie_prefix = f"slides/{upload_id}/{zombie.id}/1/"
    left = tilestore.dzi_key(zombie_prefix)  # what the zombie wrote before it stalled
    storage.put_bytes(bucket, left, b"<Image TileSize='1'/>", "application/xml")
    assert worker.run_one(winner, tiling.run_job, "winner") == "SUCCEEDED"
    assert storage.head(bucket, left) is None, "the next attempt removes what it finds"

    def served() -> tuple[str, bytes]:
        slide = client.slide(str(upload_id))
        reply = requests.get(slide["dziUrl"], timeout=30)
        assert reply.status_code == 200, reply.text
        row = conn.execute(
            "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
        ).fetchone()
        assert row is not None
        return row["tiles_prefix"], reply.content

    prefix, descriptor = served()
    assert prefix == f"slides/{upload_id}/{winner.id}/2/"
    assert b'TileSize="256"' in descriptor

    # The zombie wakes up and does all its work, with other options (so its tiles differ).
    monkeypatch.setattr(
        tiling.TileOptions, "from_env", classmethod(lambda cls: cls(tile_size=128, quality=20))
    )
    assert worker.run_one(zombie, tiling.run_job, "zombie") is None, "its success is refused"

    assert served() == (prefix, descriptor), "the slide serves what the winner wrote"
    assert storage.head(bucket, tilestore.archive_key(prefix)) is not None
    assert list(storage.list_keys(bucket, zombie_prefix)) == [], "the zombie's writes are gone"
