"""Operating it, as it shows locally: the functions' EMF metric lines land in the stack's
log (`logs/functions.log`, what CloudWatch Logs is on AWS) with the namespace, dimensions,
names and values that template.yaml's alarms and dashboard read; and one correlation id
runs from the API request (its `apigw-requestid`) through verification and the job into
their log lines and the events that enqueued them.

The traffic is a client's, over HTTP; only the log is read from the stack's folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import pyvips
import requests

from slipway.client import Client
from slipway_local.stack import Stack
from tests.support import FIXTURES, wait_for

NAMESPACE = "Slipway/slipway"  # Slipway/<stack name>: template.yaml's Globals
TELEMETRY = FIXTURES / "telemetry"
JOB_TYPES = ("tile", "tile_region", "tile_finish", "parse")


@dataclass
class Activity:
    log: Path
    offset: int  # where the log stood before the traffic
    request_id: str
    slide_upload: str
    slide_bytes: int
    tile_job: str
    tile_job_view: dict[str, Any]  # GET /v1/jobs/{id}, as the owner sees it
    tile_count: int
    parse_rows: int
    events: list[dict[str, Any]]


def records(log: Path, offset: int) -> list[dict[str, Any]]:
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:  # a line torn by another process's write: not ours to judge
                continue
    return found


def emf(log: Path, offset: int) -> list[dict[str, Any]]:
    return [r for r in records(log, offset) if "_aws" in r]


def values(lines: list[dict[str, Any]], name: str, **dimensions: str) -> list[float]:
    """Every value of `name` in lines that carry exactly these dimension values."""
    out: list[float] = []
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        keys = {k for dims in directive["Dimensions"] for k in dims}
        if (
            name in line
            and keys == set(dimensions)
            and all(line[k] == v for k, v in dimensions.items())
        ):
            out += line[name]
    return out


def all_events(reader: Client) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    since = 0
    while page := reader.events(since, 1000)["events"]:
        seen += page
        since = page[-1]["sequence"]
    return seen


@pytest.fixture(scope="module")
def activity(local_stack: Stack, api: str, client_for: Callable[..., Client]) -> Activity:
    log = local_stack.serve_log
    offset = log.stat().st_size
    ops = client_for("operator-eve")
    reader = client_for("operator-eve", "events:read")

    x = pyvips.Image.xyz(1111, 777)
    data = (x[0] % 256).bandjoin([x[1] % 256, x[0] % 97]).cast("uchar").jpegsave_buffer(Q=80)
    reply = ops.session.post(
        f"{api}/v1/uploads",
        json={
            "kind": "slide",
            "filename": "ops.jpg",
            "size": len(data),
            "contentType": "image/jpeg",
        },
        timeout=60,
    )
    assert reply.status_code == 201, reply.text
    request_id = reply.headers["apigw-requestid"]
    created = reply.json()
    ops.put(created["url"], created["headers"], data)
    slide = ops.wait_until(
        lambda: ops.slide(created["uploadId"]),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=180,
    )
    assert slide["status"] == "SUCCEEDED", slide

    sessions = []
    for name in ("sample_gnss_10hz.csv", "csv_no_time.csv"):
        upload = ops.upload_bytes("telemetry", name, (TELEMETRY / name).read_bytes(), "text/csv")
        assert ops.wait_for_upload(upload["uploadId"])["state"] == "ready"
        session_id = ops.finalise(upload["uploadId"])["sessionId"]
        sessions.append(
            ops.wait_until(
                lambda s=session_id: ops.session_of(s),  # type: ignore[misc]
                lambda s: s["status"] != "processing",
                timeout=120,
            )
        )
    assert [s["status"] for s in sessions] == ["ready", "failed"]

    waited = time.monotonic()
    assert reader.events(since=10**12, wait=1)["events"] == []  # a long-poll that times out
    assert time.monotonic() - waited >= 1
    swept = requests.post(f"{api}/_local/functions/SweeperFunction/invoke", json={}, timeout=120)
    assert swept.status_code == 200, swept.text

    events = all_events(reader)
    (tiled,) = [
        e
        for e in events
        if e["eventType"] == "v1.slide.tiled" and e["subjectId"] == created["uploadId"]
    ]
    return Activity(
        log=log,
        offset=offset,
        request_id=request_id,
        slide_upload=created["uploadId"],
        slide_bytes=len(data),
        tile_job=(tile_job := ops.upload(created["uploadId"])["jobs"][0]["jobId"]),
        tile_job_view=ops.job(tile_job),
        tile_count=tiled["payload"]["tileCount"],
        parse_rows=sum(s["rows"] for s in sessions[0]["streams"]),
        events=events,
    )


def test_the_functions_emf_lines_land_in_the_stacks_log(activity: Activity) -> None:
    Check = Callable[[list[float]], bool]
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], Check] = {  # -> a check of values
        ("UploadsCreated", (("Kind", "slide"),)): lambda v: sum(v) >= 1,
        ("UploadsReady", (("Kind", "slide"),)): lambda v: sum(v) >= 1,
        ("BytesVerified", (("Kind", "slide"),)): lambda v: activity.slide_bytes in v,
        ("VerifySeconds", (("Kind", "slide"),)): lambda v: bool(v) and all(0 < s < 120 for s in v),
        ("UploadsReady", (("Kind", "telemetry"),)): lambda v: sum(v) >= 2,
        ("JobsQueued", (("JobType", "tile"),)): lambda v: sum(v) >= 1,
        ("JobsSucceeded", (("JobType", "tile"),)): lambda v: sum(v) >= 1,
        ("JobRunSeconds", (("JobType", "tile"),)): lambda v: (
            bool(v) and all(0 < s < 180 for s in v)
        ),
        ("TilesWritten", (("JobType", "tile"),)): lambda v: activity.tile_count in v,
        ("JobsQueued", (("JobType", "parse"),)): lambda v: sum(v) >= 2,
        ("JobsSucceeded", (("JobType", "parse"),)): lambda v: sum(v) >= 1,
        ("RowsParsed", (("JobType", "parse"),)): lambda v: activity.parse_rows in v,
        ("JobsFailed", (("JobType", "parse"), ("Code", "CSV_NO_TIME_COLUMN"))): lambda v: (
            sum(v) >= 1
        ),
        ("EventsAppended", (("SubjectKind", "upload"),)): lambda v: sum(v) >= 3,
        ("EventsAppended", (("SubjectKind", "job"),)): lambda v: sum(v) >= 6,
        ("LongPollWaits", (("Stream", "events"),)): lambda v: sum(v) >= 1,
        ("LongPollWaitSeconds", (("Stream", "events"),)): lambda v: any(0.9 < s < 10 for s in v),
        **{
            (name, (("JobType", job_type),)): (lambda v: len(v) >= 1 and min(v) >= 0)
            for name in ("QueueDepth", "OldestQueuedJobAge", "JobsRunning")
            for job_type in JOB_TYPES
        },
    }

    def missing() -> list[str]:
        lines = emf(activity.log, activity.offset)
        return [
            f"{name}{dict(dims)}: {values(lines, name, **dict(dims))}"
            for (name, dims), check in expected.items()
            if not check(values(lines, name, **dict(dims)))
        ]

    # a worker's line is printed when its invocation ends, which may be after the API shows
    # the job done: wait for the figures rather than reading once
    wait_for(lambda: not missing(), timeout=60, what="the metrics in the log")
    lines = emf(activity.log, activity.offset)
    assert not missing(), missing()

    # the shape alarms depend on: our namespace, units, and the dimension sets published
    units = {
        "Count": {"UploadsCreated", "JobsSucceeded", "JobsFailed", "QueueDepth", "TilesWritten"},
        "Seconds": {"VerifySeconds", "JobRunSeconds", "OldestQueuedJobAge"},
        "Bytes": {"BytesVerified"},
    }
    ours = [ln for ln in lines if ln["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE]
    assert len(ours) == len(lines), "every EMF line is in the stack's namespace"
    seen_units: dict[str, str] = {}
    for line in ours:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert isinstance(line["_aws"]["Timestamp"], int)
        for dims in directive["Dimensions"]:
            assert dims and all(isinstance(line[d], str) for d in dims)
        for metric in directive["Metrics"]:
            seen_units[metric["Name"]] = metric["Unit"]
            assert all(isinstance(v, float) for v in line[metric["Name"]])
    for unit, names in units.items():
        assert {seen_units[n] for n in names} == {unit}, (unit, seen_units)
    failed = [ln for ln in ours if "JobsFailed" in ln]
    assert all(
        ln["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["JobType"], ["JobType", "Code"]]
        for ln in failed
    ), "JobsFailed is published per type (what the failure-rate alarm reads) and per code"


def test_one_correlation_id_runs_from_the_request_to_the_jobs_log_lines(
    activity: Activity,
) -> None:
    rid = activity.request_id
    UUID(rid)  # the gateway's request id, as API Gateway's apigw-requestid header
    (created,) = [
        e
        for e in activity.events
        if e["eventType"] == "v1.upload.created" and e["subjectId"] == activity.slide_upload
    ]
    assert created["payload"]["correlationId"] == rid
    (queued,) = [
        e
        for e in activity.events
        if e["eventType"] == "v1.job.queued" and e["subjectId"] == activity.tile_job
    ]
    assert queued["payload"]["payload"]["correlationId"] == rid, "the job keeps the request's id"
    view = activity.tile_job_view
    assert view["correlationId"] == rid, "GET /v1/jobs/{id} shows the owner the request's id"
    assert view["traceId"] is None  # no X-Ray locally (the tracer is off)

    def lines() -> dict[str, list[dict[str, Any]]] | None:
        found: dict[str, list[dict[str, Any]]] = {"ready": [], "started": []}
        for r in records(activity.log, activity.offset):
            if r.get("message") == "upload ready" and r.get("upload_id") == activity.slide_upload:
                found["ready"].append(r)
            if r.get("message") == "job started" and r.get("job_id") == activity.tile_job:
                found["started"].append(r)
        return found if all(found.values()) else None

    found = wait_for(lines, what="the job's lines")
    (ready,) = found["ready"]  # logged by upload_complete, woken by the S3 notification
    assert ready["service"] == "upload_complete" and ready["correlation_id"] == rid
    (started,) = found["started"]  # logged by the tile worker, woken by the job's signal
    assert started["service"] == "tile" and started["correlation_id"] == rid
    assert started["function_request_id"] != ready["function_request_id"]
