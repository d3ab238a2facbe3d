"""A worker function's Lambda handler: SQS signals in, drained jobs, a batch response."""

from __future__ import annotations

from typing import Any

import pytest

from slipway import worker


class Context:
    aws_request_id = "req-1"
    function_name = "tile"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:tile"

    def get_remaining_time_in_millis(self) -> int:
        return 500_000


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_each_signal_drains_the_queue_and_failures_are_reported_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drained: list[tuple[str, str, float]] = []

    def drain(job_type: str, handler: Any, name: str, time_left: Any) -> int:
        drained.append((job_type, name, time_left()))
        if len(drained) == 2:
            raise RuntimeError("database gone")
        return 0

    monkeypatch.setattr(worker, "drain", drain)
    handle = worker.signal_handler("tile", lambda job, lease: [])
    reply = handle(sqs_event('{"jobType": "tile"}', "{}", "{}"), Context())
    assert [d[:2] for d in drained] == [("tile", "tile:req-1")] * 3
    assert drained[0][2] == 500.0
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
