"""Job signals are hints: a lost one is re-sent by the sweeper, duplicates double nothing.
Runs against the stack's own tile worker (the real function behind the real queue)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
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


def unsignalled_tile_job(client: Client) -> UUID:
    """A tile job committed for a ready slide, with no signal sent to any worker."""
    upload_id = ready_slide(client)
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
    job_id = unsignalled_tile_job(client_for("dispatcher"))  # the signal is "lost"
    report = invoke(api, "SweeperFunction")
    assert "tile" in report["signalled"]
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
