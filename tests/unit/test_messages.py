"""Queue messages: poison is told from work, dropped, and the rest retried; unexpected
exceptions become a stable code and a fixed sentence."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import EndpointConnectionError

from slipway import jobs, messages, worker
from slipway.errors import Code

S3_EVENT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
                "object": {"key": "incoming/0b1c8e1e-0000-4000-8000-000000000000", "size": 3},
            },
        }
    ]
}


def record(body: str) -> SQSRecord:
    return SQSRecord(
        {
            "messageId": "m1",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
        }
    )


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(S3_EVENT),
        '{"Event": "s3:TestEvent", "Bucket": "uploads"}',
        '{"verifyUpload": "0b1c8e1e-0000-4000-8000-000000000000"}',
        '{"Records": []}',
    ],
)
def test_upload_events_of_every_kind_pass_as_they_are(body: str) -> None:
    assert messages.upload_event(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not JSON",
        "[1, 2]",
        '"a string"',
        "{}",
        '{"verifyUpload": "not-a-uuid"}',
        '{"Records": "none"}',
        '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}, "object": {}}}]}',
        '{"Event": "something else"}',
    ],
)
def test_malformed_upload_events_are_poison(body: str) -> None:
    with pytest.raises(messages.Malformed):
        messages.upload_event(body)


def test_the_consumer_drops_poison_and_lets_other_failures_be_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[Any] = []

    def handle(body: Any) -> None:
        if body.get("verifyUpload") == "00000000-0000-4000-8000-000000000000":
            raise ConnectionError("database gone")
        handled.append(body)

    on_record = messages.consumer(messages.upload_event, handle)
    on_record(record("not JSON"))  # dropped: no exception, nothing handled
    assert handled == []
    assert "malformed message dropped" in caplog.text
    on_record(record(json.dumps(S3_EVENT)))
    assert handled == [S3_EVENT]
    with pytest.raises(ConnectionError):  # a failure that may pass goes back to SQS
        on_record(record('{"verifyUpload": "00000000-0000-4000-8000-000000000000"}'))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/bucket/key"),
            Code.STORAGE_FAILED,
        ),
        (psycopg.OperationalError("connection to server at 10.0.0.5 failed"), Code.UNAVAILABLE),
        (KeyError("sessionId"), Code.TRANSIENT),
    ],
)
def test_unexpected_exceptions_are_recorded_without_their_text(exc: Exception, code: Code) -> None:
    error = worker.public_error(exc)
    assert error.code == code and not error.permanent
    assert str(exc) not in error.message and "127.0.0.1" not in error.message
    assert "10.0.0.5" not in error.message and "sessionId" not in error.message


def test_older_transient_rows_show_the_fixed_sentence() -> None:
    fields: dict[str, Any] = dict.fromkeys(jobs.Job.__dataclass_fields__)
    job = jobs.Job(
        **fields
        | {
            "status": "FAILED",
            "last_error_code": "TRANSIENT",
            "last_error_message": "EndpointConnectionError: Could not connect to http://x",
        }
    )
    assert job.error == {"code": "TRANSIENT", "message": jobs.TRANSIENT_MESSAGE}
