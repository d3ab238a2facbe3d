"""Dead-letter redrive against LocalStack's SQS (docs/operations.md#dead-letter-redrive):
messages dead-lettered by SQS itself go back to the queue each came from, by a move task
or by copying, none lost; and `slipway dlq redrive` on the stack's own queues puts a dead
verification request back where the stack's consumer settles the upload."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psycopg
import pytest
import requests

from slipway import dlq, uploads
from slipway.client import Client
from tests.support import run_cli, wait_for


@pytest.fixture
def sqs() -> Any:
    return boto3.client("sqs")


def arn_of(sqs: Any, url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


@pytest.fixture
def two_sources(sqs: Any) -> Iterator[tuple[str, list[str]]]:
    """Two queues sharing one DLQ after a single receive, as the tile and parse queues
    share the job-signal DLQ (theirs after 3)."""
    tag = uuid.uuid4().hex[:8]
    dead = sqs.create_queue(QueueName=f"test-dlq-{tag}")["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, dead), "maxReceiveCount": "1"})
    sources = [
        sqs.create_queue(QueueName=f"test-src-{tag}-{n}", Attributes={"RedrivePolicy": policy})[
            "QueueUrl"
        ]
        for n in (1, 2)
    ]
    try:
        yield dead, sources
    finally:
        for url in (dead, *sources):
            sqs.delete_queue(QueueUrl=url)


def dead_letter(sqs: Any, url: str, bodies: list[str]) -> None:
    """Send, then receive without deleting until SQS moves them to the DLQ (a consumer
    that keeps failing)."""
    for body in bodies:
        attributes = {"origin": {"DataType": "String", "StringValue": url}}
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        if not got.get("Messages") and count(sqs, url) == 0:
            return
    pytest.fail("SQS did not dead-letter the messages")


def count(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(v) for v in attributes.values())


def drain(sqs: Any, url: str) -> list[tuple[str, str | None]]:
    """Every message now on the queue: (body, its `origin` attribute)."""
    out: list[tuple[str, str | None]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return sorted(out)
        for m in got:
            origin = m.get("MessageAttributes", {}).get("origin", {}).get("StringValue")
            out.append((m["Body"], origin))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.mark.parametrize("method", ["move-task", "copy"])
def test_dead_letters_go_back_to_the_queue_each_came_from(
    sqs: Any, two_sources: tuple[str, list[str]], method: str
) -> None:
    dead, (first, second) = two_sources
    dead_letter(sqs, first, ["a1", "a2", "a3"])
    dead_letter(sqs, second, ["b1", "b2"])
    assert count(sqs, dead) == 5

    [listed] = dlq.dead_letter_queues([first, second])  # what --dry-run prints
    assert listed.summary() == {
        "queue": dead,
        "sources": sorted([first, second]),
        "messages": 5,
        "inFlight": 0,
        "moved": 0,
        "left": 0,
        "method": None,
    }
    assert count(sqs, dead) == 5, "listing moves nothing"

    [done] = dlq.redrive(method, timeout=60, sources=[first, second])
    assert (done.method, done.moved, done.left) == (method, 5, 0)
    assert count(sqs, dead) == 0
    assert drain(sqs, first) == [(b, first) for b in ("a1", "a2", "a3")], "attributes kept"
    assert drain(sqs, second) == [("b1", second), ("b2", second)]


def test_a_message_with_no_known_source_stays_in_the_dlq(
    sqs: Any, two_sources: tuple[str, list[str]]
) -> None:
    """Sent to a shared DLQ directly, it names no source: the move task fails on it, the
    copy leaves it there, and the count says so."""
    dead, sources = two_sources
    dead_letter(sqs, sources[0], ["known"])
    sqs.send_message(QueueUrl=dead, MessageBody="orphan")
    [done] = dlq.redrive("move-task", timeout=60, sources=sources)
    assert done.left == 1 and done.method == "move-task+copy", done.summary()
    assert drain(sqs, sources[0]) == [("known", sources[0])]
    wait_for(lambda: count(sqs, dead) == 1, timeout=70, what="the orphan back in the DLQ")


def test_the_cli_redrives_the_stacks_dead_verification_back_to_its_consumer(
    stack: dict[str, str],
    sqs: Any,
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
) -> None:
    env = {**os.environ, **stack, "SLIPWAY_ENV_FILE": "/nonexistent"}
    dry = run_cli("dlq", "redrive", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    queues = {q["queue"].rsplit("/", 1)[1]: q for q in map(json.loads, dry.stdout.splitlines())}
    events_dlq = next(q for name, q in queues.items() if name.endswith("upload-events-dlq"))
    signals_dlq = next(q for name, q in queues.items() if name.endswith("job-signals-dlq"))
    assert events_dlq["sources"] == [stack["SLIPWAY_UPLOAD_EVENTS_QUEUE_URL"]]
    assert signals_dlq["sources"] == sorted(
        [stack["SLIPWAY_TILE_QUEUE_URL"], stack["SLIPWAY_PARSE_QUEUE_URL"]]
    )

    # An upload whose verification died: its notification found the upload held by a
    # verifier that then vanished, and the request that followed was dead-lettered.
    data = os.urandom(2048)
    client = client_for("dlq-user")
    created = client.create_upload(
        "telemetry", "t.csv", len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    upload_id = created["uploadId"]
    conn.execute(
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, 'vanished-verifier', now() + interval '10 minutes')",
        (upload_id,),
    )
    put = requests.put(created["url"], data=data, headers=created["headers"], timeout=60)
    assert put.status_code == 200, put.text
    time.sleep(3)  # the notification is consumed, and the held upload left alone
    assert uploads.load(uuid.UUID(upload_id)).state == "pending"
    conn.execute(
        "UPDATE upload_checks SET holder = NULL, lease_expires_at = NULL WHERE upload_id = %s",
        (upload_id,),
    )
    sqs.send_message(
        QueueUrl=events_dlq["queue"], MessageBody=json.dumps({"verifyUpload": upload_id})
    )

    dry = run_cli("dlq", "redrive", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    [listed] = [
        q for q in map(json.loads, dry.stdout.splitlines()) if q["queue"] == events_dlq["queue"]
    ]
    # the stack may have dead-lettered messages of its own (e.g. a notification that timed
    # out 5 times on a loaded machine): they are counted, and moved, too
    assert listed["messages"] == events_dlq["messages"] + 1 and listed["moved"] == 0
    assert uploads.load(uuid.UUID(upload_id)).state == "pending", "a dry run moves nothing"

    done = run_cli("dlq", "redrive", env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    [moved] = [
        q for q in map(json.loads, done.stdout.splitlines()) if q["queue"] == events_dlq["queue"]
    ]
    # ours never came from the queue (sent to the DLQ here), so the move task cannot place
    # it and fails; the copy then sends it to the DLQ's only source
    assert (moved["moved"], moved["left"]) == (listed["messages"], 0), moved
    assert moved["method"] == "move-task+copy", moved
    assert count(sqs, events_dlq["queue"]) == 0

    def settled() -> uploads.Upload | None:
        upload = uploads.load(uuid.UUID(upload_id))
        return upload if upload.state != "pending" else None

    done_upload = wait_for(settled, timeout=30, what="the redriven request to settle it")
    assert done_upload.state == "ready"
