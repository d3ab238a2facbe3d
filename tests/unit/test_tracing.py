"""Traces and the correlation id: the X-Ray SDK sends our spans and annotations to a
daemon (a real UDP socket here) when it runs as on Lambda, and is a no-op elsewhere; an
HTTP request's id becomes the correlation id of the jobs it enqueues and of their logs.

Each case runs in a fresh interpreter: the Tracer, the Logger and X-Ray keep global state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from tests.support import ROOT

PRELUDE = """
import json, logging, sys
from slipway import jobs, logs, tracing

class Context:
    function_name = "tile"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:tile"
    aws_request_id = "lambda-req-1"

logger = logs.setup("tile")
tracer = tracing.setup("tile")
"""

TRACED = (
    PRELUDE
    + """
@logs.entry(logger, tracer)
def handler(event, context):
    with tracing.span("job", job_id="job-1", job_type="tile", upload_id=None):
        tracing.annotate(upload_id="upload-1")
    xray = "aws_xray_sdk" in sys.modules
    return {"enabled": tracing.enabled(), "traceId": tracing.trace_id(), "xray": xray}

print("RESULT " + json.dumps(handler({}, Context())))
"""
)

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    base.pop("LAMBDA_TASK_ROOT", None)
    base.pop("_X_AMZN_TRACE_ID", None)
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=base | {"AWS_DEFAULT_REGION": "us-east-1"} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def result(out: subprocess.CompletedProcess[str]) -> Any:
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def received(daemon: socket.socket) -> list[dict[str, Any]]:
    """The segment documents the X-Ray SDK sent (header line, then the document)."""
    daemon.settimeout(2)
    documents = []
    try:
        while True:
            packet = daemon.recv(65536).decode()
            header, _, body = packet.partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))
    except TimeoutError:
        return documents


def test_on_lambda_spans_reach_the_daemon_with_their_ids() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        port = daemon.getsockname()[1]
        out = run(
            TRACED,
            LAMBDA_TASK_ROOT=str(ROOT),
            _X_AMZN_TRACE_ID=TRACE_HEADER,
            AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{port}",
            AWS_LAMBDA_FUNCTION_NAME="tile",
        )
        documents = received(daemon)
    assert result(out) == {
        "enabled": True,
        "traceId": "1-5759e988-bd862e3fe1be46a994272793",
        "xray": True,
    }
    by_name = {d["name"]: d for d in documents}
    assert {"## job", "## handler"} <= set(by_name), documents
    job = by_name["## job"]
    assert job["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert job["annotations"] == {"job_id": "job-1", "job_type": "tile", "upload_id": "upload-1"}
    assert by_name["## handler"]["annotations"]["Service"] == "tile"
    assert "metadata" not in by_name["## handler"] or "handler response" not in json.dumps(
        by_name["## handler"]["metadata"]
    ), "replies are never captured (they may hold signed URLs)"


def test_without_lambda_tracing_is_off_sends_nothing_and_loads_no_sdk() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        port = daemon.getsockname()[1]
        for env in (
            {},  # the CLI, tests: no LAMBDA_TASK_ROOT
            {"LAMBDA_TASK_ROOT": str(ROOT), "POWERTOOLS_TRACE_DISABLED": "true"},  # local stack
        ):
            out = run(TRACED, AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{port}", **env)
            assert result(out) == {"enabled": False, "traceId": None, "xray": False}
        assert received(daemon) == []


CORRELATED = (
    PRELUDE
    + """
@logs.entry(logger, tracer)
def api(event, context):
    logging.getLogger("slipway.api").info("enqueueing")
    return jobs.queued("tile", "alice", None, {"k": 1}).payload

@logs.entry(logger, tracer)
def worker(event, context):
    with logs.correlated(event["payload"].get("correlationId")):
        logging.getLogger("slipway.worker").info("job started", extra={"job_id": "job-1"})
    logging.getLogger("slipway.worker").info("drained")

queued = api({"requestContext": {"requestId": "req-abc"}, "headers": {}}, Context())
worker(queued, Context())
queue_event = {"Records": []}  # an HTTP handler woken by a queue: no request id
print("RESULT " + json.dumps([queued, api(queue_event, Context())]))
"""
)


def test_a_requests_id_reaches_the_job_and_its_log_lines() -> None:
    out = run(CORRELATED)
    queued, from_queue = result(out)
    assert queued["payload"] == {"correlationId": "req-abc", "k": 1}
    assert from_queue["payload"] == {"k": 1}, "no request, no correlation id"
    lines: dict[str, list[dict[str, Any]]] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            lines.setdefault(record["message"], []).append(record)
    assert [r.get("correlation_id") for r in lines["enqueueing"]] == ["req-abc", None]
    (started,) = lines["job started"]
    assert started["correlation_id"] == "req-abc" and started["job_id"] == "job-1"
    assert started["service"] == "tile" and started["function_request_id"] == "lambda-req-1"
    (after,) = lines["drained"]
    assert "correlation_id" not in after, "the job's id ends with the job"
