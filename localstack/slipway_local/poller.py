"""Lambda's SQS event-source mapping and EventBridge schedules, locally.

Each mapping long-polls its queue and invokes the function with the same event JSON
Lambda sends: on success the batch is deleted, except the messages the function reports
in `batchItemFailures`; on an error (or a failure naming no message of the batch) nothing
is deleted, so the messages come back after the visibility timeout and the queue's redrive
policy dead-letters them after N tries. The functions drop malformed messages themselves
(slipway.messages), so only failures that may pass come back.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from slipway_local.runtime import FunctionError, FunctionPool
from slipway_local.template import ACCOUNT, REGION, QueueSource, Schedule

log = logging.getLogger("slipway_local.poller")


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = {
        name: {k[0].lower() + k[1:]: v for k, v in value.items()}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class QueueMapping(threading.Thread):
    def __init__(
        self,
        source: QueueSource,
        queue_url: str,
        queue_arn: str,
        pool: FunctionPool,
        sqs: Any,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"sqs-{source.function}", daemon=True)
        self.source, self.queue_url, self.queue_arn = source, queue_url, queue_arn
        self.pool, self.sqs, self.stop_event = pool, sqs, stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._poll_once()
            except Exception:
                log.exception("polling %s failed", self.queue_url)
                self.stop_event.wait(1)

    def _poll_once(self) -> None:
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=20,  # as Lambda polls; returns at once when a message comes
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return
        event = {"Records": [_record(m, self.queue_arn) for m in messages]}
        try:
            result = self.pool.invoke(event)
        except FunctionError as exc:
            log.warning(
                "%s failed on a batch of %d; it will be retried: %s",
                self.source.function,
                len(messages),
                exc,
            )
            return
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
        if not failed <= {m["MessageId"] for m in messages}:
            # as Lambda does: a failure naming no message of the batch fails the whole batch
            log.warning("%s reported unknown failures; the batch will be retried", self.queue_url)
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )


class Scheduler(threading.Thread):
    def __init__(self, schedule: Schedule, pool: FunctionPool, stop: threading.Event) -> None:
        super().__init__(name=f"schedule-{schedule.function}", daemon=True)
        self.schedule, self.pool, self.stop_event = schedule, pool, stop

    def run(self) -> None:
        while not self.stop_event.wait(self.schedule.seconds):
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT,
                "region": REGION,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.schedule.function}"],
                "detail": {},
            }
            try:
                self.pool.invoke(event)
            except FunctionError as exc:
                log.warning("scheduled %s failed: %s", self.schedule.function, exc)
