"""The operator's routes over HTTP: the page is public and holds no data; the figures and
any owner's job need `ops:read`, an operator's retry `ops:write` (401 without a token,
403 without the scope); a real failed tile job shows up under its code and is retried."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import pyvips
import requests

from slipway.client import ApiError, Client
from slipway.errors import Code


def failed_tile_job(owner: Client) -> dict[str, Any]:
    """A slide upload that tiling refuses (a GIF): its tile job ends FAILED with a code."""
    gif = pyvips.Image.gaussnoise(300, 200).cast("uchar").gifsave_buffer()
    upload_id = owner.upload_bytes("slide", "ops.gif", gif, "image/jpeg")["uploadId"]
    slide = owner.wait_until(
        lambda: owner.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=120,
    )
    assert slide["status"] == "FAILED", slide
    job = owner.job(slide["jobId"])
    assert job["status"] == "FAILED" and job["error"]["code"] == Code.IMAGE_UNSUPPORTED, job
    return job


def refused(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code


def test_the_page_is_public_static_and_locked_down(api: str) -> None:
    reply = requests.get(f"{api}/v1/ops", timeout=30)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "Slipway operations" in reply.text
    policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_the_figures_need_ops_read_and_show_every_owners_failures(
    api: str, client_for: Callable[..., Client]
) -> None:
    owner_name = f"ops-owner-{uuid.uuid4().hex[:8]}"
    owner = client_for(owner_name)
    job = failed_tile_job(owner)

    anonymous = Client(api)
    for path in ("/v1/ops/stats", f"/v1/ops/jobs/{job['jobId']}"):
        assert refused(partial(anonymous.call, "GET", path)) == (401, "UNAUTHORIZED")
        assert refused(partial(owner.call, "GET", path)) == (403, "FORBIDDEN")
    events_only = client_for("ops-events", "events:read")
    assert refused(lambda: events_only.call("GET", "/v1/ops/stats")) == (403, "FORBIDDEN")

    operator = client_for("ops-operator", "ops:read")
    figures = operator.call("GET", "/v1/ops/stats")
    [unsupported] = [f for f in figures["failures"] if f["code"] == Code.IMAGE_UNSUPPORTED]
    assert job["jobId"] in unsupported["jobIds"], "the newest failures with the code"
    assert "tile" in unsupported["types"] and unsupported["count"] >= 1
    assert unsupported["lastMessage"]
    listed = {q["type"] for q in figures["queues"]}  # other tests queue types of their own
    assert {t for t in listed if not t.startswith("test-")} <= {
        "tile",
        "tile_region",
        "tile_finish",
        "parse",
    }
    tile = [t for t in figures["throughput"]["types"] if t["type"] == "tile"]
    assert tile and tile[0]["byStatus"].get("FAILED", 0) >= 1
    assert figures["uploads"].get("ready", 0) >= 1
    assert any(s["jobId"] == job["jobId"] for s in figures["slowest"]) or (
        len(figures["slowest"]) == 10
    ), "a job that ran and ended is among the slowest unless ten ran longer"
    for hours in (0, 169, "x"):
        assert refused(partial(operator.call, "GET", "/v1/ops/stats", hours=hours))[0] == 400
    assert operator.call("GET", "/v1/ops/stats", hours=1)["windowHours"] == 1

    detail = operator.call("GET", f"/v1/ops/jobs/{job['jobId']}")
    assert detail["owner"] == owner_name, "the operator sees whose job it is"
    assert detail["error"] == job["error"]
    assert {k: detail[k] for k in job} == job, "otherwise the owner's view"
    missing = str(uuid.uuid4())
    assert refused(lambda: operator.call("GET", f"/v1/ops/jobs/{missing}")) == (404, "NOT_FOUND")


def test_an_operator_retries_any_owners_job_with_ops_write(
    client_for: Callable[..., Client],
) -> None:
    owner = client_for(f"ops-retry-{uuid.uuid4().hex[:8]}")
    job = failed_tile_job(owner)
    path = f"/v1/ops/jobs/{job['jobId']}/retry"
    reader = client_for("ops-reader", "ops:read")
    stranger = client_for("ops-stranger")
    assert refused(lambda: reader.call("POST", path)) == (403, "FORBIDDEN")
    assert refused(lambda: stranger.call("POST", path)) == (403, "FORBIDDEN")
    assert refused(lambda: stranger.retry_job(job["jobId"])) == (404, "NOT_FOUND"), (
        "the owner's route stays the owner's"
    )
    assert owner.job(job["jobId"])["status"] == "FAILED", "nothing was retried so far"

    operator_name = f"ops-writer-{uuid.uuid4().hex[:8]}"
    writer = client_for(operator_name, "ops:write")
    requeued = writer.call("POST", path)
    assert (requeued["status"], requeued["attemptCount"], requeued["error"]) == ("QUEUED", 0, None)
    again = owner.wait_until(
        lambda: owner.job(job["jobId"]), lambda j: j["status"] == "FAILED", timeout=120
    )
    assert again["attemptCount"] == 1 and again["finishedAt"] > job["finishedAt"], "ran again"

    log = client_for("ops-auditor", "events:read")
    since, found = 0, []
    while True:
        page = log.events(since, 1000)
        found += [e for e in page["events"] if e["subjectId"] == job["jobId"]]
        if not page["events"]:
            break
        since = page["next"]
    [requeue] = [e for e in found if e["eventType"] == "v1.job.requeued"]
    assert requeue["actor"] == f"operator:{operator_name}"
    assert requeue["payload"]["by"] == operator_name
    assert requeue["payload"]["previousError"]["code"] == Code.IMAGE_UNSUPPORTED

    missing = str(uuid.uuid4())
    assert refused(lambda: writer.call("POST", f"/v1/ops/jobs/{missing}/retry"))[0] == 404
