"""Queue messages: their shapes, and consuming an SQS batch without retrying poison.

A message that can never be processed (not JSON, or JSON of the wrong shape) is logged and
dropped at its first delivery: redelivering it would only fail again, each time after the
queue's visibility timeout, until the dead-letter queue took it. Only failures that may
pass (the database or storage unreachable) are reported back to SQS and retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Literal
from uuid import UUID

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)
LOGGED_BODY_CHARS = 300


class Malformed(ValueError):
    """A message that no retry can make processable."""


class _S3Bucket(BaseModel):
    name: str


class _S3Object(BaseModel):
    key: str


class _S3Entity(BaseModel):
    bucket: _S3Bucket
    object_: _S3Object = Field(alias="object")


class _S3Record(BaseModel):
    eventName: str
    s3: _S3Entity


class S3Notification(BaseModel):
    Records: list[_S3Record]


class S3TestEvent(BaseModel):
    Event: Literal["s3:TestEvent"]


class VerifyRequest(BaseModel):
    verifyUpload: UUID


class JobSignal(BaseModel):
    jobType: str


# what slipway.uploads.on_notification reads
_UPLOAD_EVENT = TypeAdapter(VerifyRequest | S3TestEvent | S3Notification)


def _json_object(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise Malformed(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Malformed(f"a JSON {type(value).__name__}, not an object")
    return value


def upload_event(body: str) -> dict[str, Any]:
    """A message of the upload-events queue, checked: an S3 notification, S3's test event
    or a verification request."""
    value = _json_object(body)
    try:
        _UPLOAD_EVENT.validate_python(value)
    except ValidationError as exc:
        raise Malformed(f"not an upload event: {exc.error_count()} errors") from exc
    return value


def _describe(record: SQSRecord) -> dict[str, Any]:
    return {
        "message_id": record.message_id,
        "queue": record.event_source_arn,
        "receive_count": record.raw_event.get("attributes", {}).get("ApproximateReceiveCount"),
        "body": record.body[:LOGGED_BODY_CHARS],
    }


def check_signal(record: SQSRecord, job_type: str) -> None:
    """Warn about a job signal of the wrong shape (it still wakes the worker)."""
    try:
        JobSignal.model_validate(_json_object(record.body))
    except (Malformed, ValidationError) as exc:
        log.warning(
            "malformed %s signal", job_type, extra=_describe(record) | {"reason": str(exc)[:200]}
        )


def consumer(
    parse: Callable[[str], Any], handle: Callable[[Any], object]
) -> Callable[[SQSRecord], None]:
    """A Powertools BatchProcessor record handler: `parse` the body (raising Malformed for
    poison, which is logged and dropped), then `handle` it; whatever else `handle` raises
    fails this message only, to be retried by SQS."""

    def on_record(record: SQSRecord) -> None:
        try:
            message = parse(record.body)
        except Malformed as exc:
            log.error("malformed message dropped", extra=_describe(record) | {"reason": str(exc)})
            return
        handle(message)

    return on_record
