"""Job signals are hints: a lost one is re-sent by the sweeper, duplicates double nothing.
Runs against the stack's own tile worker (the real function behind the real queue)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest
import pyvips
import requests

from slipway import db, jobs
from slipway.client import Client
from slipway.projections import record
from tests.support import wait_for


def invoke(api: str, function: str) -> dict[str, Any]:
    """What `aws lambda invoke` does: run a (scheduled) function now."""
    reply = requests.post(
        f"{api}/_local/functions/{function}/invoke", json={"source": "test"}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def ready_slide(client: Client) -> str:
    png = pyvips.Image.black(400, 300).pngsave_buffer()
    upload_id = str(client.upload_bytes("slide", "d.png", png, "image/png")["uploadId"])
    client.wait_until(lambda: client.slide(upload_id), lambda s: s["status"] == "SUCCEEDED")
    return upload_id


def status(job_id: UUID) -> str:
    return jobs.get(job_id).status


def tile_queue_is_idle() -> bool:
    """No signal waits on the tile queue and none is being handled (a worker's batch stays
    in flight until it returns): no worker is draining, none is about to."""
    attributes = jobs._sqs().get_queue_attributes(
        QueueUrl=os.environ["SLIPWAY_TILE_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(n) == 0 for n in attributes.values())


def unsignalled_tile_job(client: Client) -> UUID:
    """A tile job committed for a ready slide, with no signal sent to any worker, and no
    worker running that could claim it on its own."""
    upload_id = ready_slide(client)
    wait_for(tile_queue_is_idle, timeout=60, what="the tile worker to go idle")
    queued = jobs.queued("tile", "dispatcher", UUID(upload_id), {})
    with db.transaction() as c:
        record(c, "test", queued)
    assert queued.subject_id is not None
    return queued.subject_id


def test_a_job_whose_signal_was_lost_runs_after_the_sweep(
    api: str,
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
) -> None:
    # The stack's own scheduled sweep may run first and claim the job: then the scenario
    # did not happen, and it is tried again.
    for _ in range(3):
        job_id = unsignalled_tile_job(client_for("dispatcher"))  # the signal is "lost"
        if status(job_id) != "QUEUED":
            continue
        report = invoke(api, "SweeperFunction")
        if "tile" in report["signalled"]:
            break
        assert status(job_id) != "QUEUED", f"the sweep did not signal a due job: {report}"
    else:
        pytest.fail("three tries in a row, something other than this sweep ran the job")
    wait_for(lambda: status(job_id) == "SUCCEEDED", timeout=60, what="the re-signalled job")


def test_duplicate_signals_run_a_job_once(
    api: str,
    client_for: Callable[..., Client],
    conn: psycopg.Connection[Any],
) -> None:
    job_id = unsignalled_tile_job(client_for("dispatcher"))
    for _ in range(5):
        jobs._sqs().send_message(
            QueueUrl=os.environ["SLIPWAY_TILE_QUEUE_URL"],
            MessageBody=json.dumps({"jobType": "tile"}),
        )
    wait_for(lambda: status(job_id) == "SUCCEEDED", timeout=60, what="the job")
    claims = conn.execute(
        "SELECT count(*) AS n FROM events WHERE subject_id = %s AND event_type = 'v1.job.claimed'",
        (job_id,),
    ).fetchone()
    assert claims == {"n": 1}


def test_the_scheduled_invariant_check_finds_the_log_explains_everything(api: str) -> None:
    result = invoke(api, "ProjectFunction")
    assert result["ok"] is True, result
    assert result["events"] > 0
