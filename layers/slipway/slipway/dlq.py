"""Dead-letter redrive (`slipway dlq redrive`, docs/operations.md#dead-letter-redrive).

The dead-letter queues are found from the source queues Slipway is configured with (the
upload-events queue and the job queues): each source's `RedrivePolicy` names its DLQ, so
nothing is described twice. A DLQ can serve several sources (the job-signal DLQ takes the
tile and parse queues'), and each message goes back to the queue it came from.

Two ways to move them:

- `move-task` (the default): SQS `StartMessageMoveTask` with no destination, which
  returns every message to its own source queue, server-side; we wait for the task to end.
  LocalStack implements it too (since 3.x; the source per message since 3.3).
- `copy`: receive, send to the source (named by the message's `DeadLetterQueueSourceArn`,
  or the DLQ's only source), then delete; in batches of 10. A message is deleted only
  once its copy was accepted, so none is lost; a failure can at worst duplicate one, and
  every consumer treats messages as hints (duplicates change nothing).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from slipway.config import settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

log = logging.getLogger(__name__)
BATCH = 10  # SQS's receive, send and delete batch limit
UNSUPPORTED = {
    "UnsupportedOperation",
    "InvalidAction",
    "AWS.SimpleQueueService.UnsupportedOperation",
}


@dataclass
class DeadLetterQueue:
    url: str
    arn: str
    sources: dict[str, str] = field(default_factory=dict)  # source ARN → URL
    visible: int = 0
    in_flight: int = 0
    moved: int = 0
    left: int = 0  # not moved (no known source, or its copy refused); still in the DLQ
    method: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.url,
            "sources": sorted(self.sources.values()),
            "messages": self.visible,
            "inFlight": self.in_flight,
            "moved": self.moved,
            "left": self.left,
            "method": self.method or None,
        }


def _sqs() -> SQSClient:
    client: SQSClient = boto3.client("sqs")
    return client


def _counts(sqs: SQSClient, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    visible = attrs.get("ApproximateNumberOfMessages") or "0"
    return int(visible), int(attrs.get("ApproximateNumberOfMessagesNotVisible") or "0")


def _url_of(sqs: SQSClient, arn: str) -> str:
    *_, account, name = arn.split(":")
    return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


def source_urls() -> list[str]:
    """The queues Slipway consumes (a DLQ's sources), from its settings."""
    s = settings()
    urls = [s.upload_events_queue_url, *s.job_queue_urls.values()]
    return sorted({u for u in urls if u})


def dead_letter_queues(
    sources: list[str] | None = None, sqs: SQSClient | None = None
) -> list[DeadLetterQueue]:
    """Each DLQ named by a source's redrive policy (Slipway's queues unless `sources` are
    given), with its sources and message counts."""
    sqs = sqs or _sqs()
    found: dict[str, DeadLetterQueue] = {}
    for url in source_urls() if sources is None else sources:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["QueueArn", "RedrivePolicy"],
        )["Attributes"]
        policy = attrs.get("RedrivePolicy")
        if not policy:
            continue
        target = str(json.loads(policy)["deadLetterTargetArn"])
        dlq = found.get(target) or DeadLetterQueue(_url_of(sqs, target), target)
        dlq.sources[attrs["QueueArn"]] = url
        found[target] = dlq
    for dlq in found.values():
        dlq.visible, dlq.in_flight = _counts(sqs, dlq.url)
    return sorted(found.values(), key=lambda d: d.url)


def redrive(
    method: str = "move-task",
    timeout: float = 300.0,
    sources: list[str] | None = None,
    sqs: SQSClient | None = None,
) -> list[DeadLetterQueue]:
    """Move every message of every DLQ back to its source queue; returns what was done."""
    sqs = sqs or _sqs()
    queues = dead_letter_queues(sources, sqs)
    for dlq in queues:
        if dlq.visible == 0:
            continue
        if method == "move-task":
            try:
                if _move_task(sqs, dlq, timeout):
                    continue
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in UNSUPPORTED:
                    raise
                log.warning("StartMessageMoveTask unsupported here; copying instead")
        _copy(sqs, dlq, timeout)
    return queues


def _move_task(sqs: SQSClient, dlq: DeadLetterQueue, timeout: float) -> bool:
    """One move task for the DLQ; False if it failed (e.g. a message that names no source
    queue, one sent to the DLQ directly), so the caller copies what is left."""
    dlq.method = "move-task"
    handle = sqs.start_message_move_task(SourceArn=dlq.arn)["TaskHandle"]
    deadline = time.monotonic() + timeout
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle") == handle), None)
        task = task or (tasks[0] if tasks else None)  # a finished task may drop its handle
        status = task.get("Status") if task else None
        if task is not None and status in ("COMPLETED", "FAILED", "CANCELLED"):
            dlq.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            break
        if time.monotonic() > deadline:
            sqs.cancel_message_move_task(TaskHandle=handle)
            raise TimeoutError(f"the move task of {dlq.url} did not end within {timeout:.0f} s")
        time.sleep(0.5)
    if status != "COMPLETED":
        log.warning(
            "the move task ended %s (%s); copying what is left",
            status,
            task.get("FailureReason", ""),
            extra={"queue": dlq.url},
        )
        dlq.visible, _ = _counts(sqs, dlq.url)
        return False
    dlq.left, _ = _counts(sqs, dlq.url)
    return True


def _copy(sqs: SQSClient, dlq: DeadLetterQueue, timeout: float) -> None:
    """Receive, send to the source, delete what was sent; until as many messages as the
    DLQ held were handled or it holds none but ours (the ones left, invisible for a while).
    A message redriven and failing again comes back only after its source's receives."""
    dlq.method = f"{dlq.method}+copy" if dlq.method else "copy"
    only = next(iter(dlq.sources.values())) if len(dlq.sources) == 1 else None
    visible, in_flight = _counts(sqs, dlq.url)  # in flight: e.g. a failed move task's
    budget, deadline = visible + in_flight, time.monotonic() + timeout
    while budget > 0 and time.monotonic() < deadline:
        got = sqs.receive_message(
            QueueUrl=dlq.url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,  # ours while we copy; back in the DLQ if we stop
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            visible, in_flight = _counts(sqs, dlq.url)
            if visible == 0 and in_flight <= dlq.left:
                break
            continue  # some are still invisible: wait for them
        budget -= len(got)
        by_source: dict[str, list[MessageTypeDef]] = {}
        for message in got:
            arn = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
            url = dlq.sources.get(arn) if arn else only
            if url is None:  # a source we do not know: leave it for a person to look at
                log.warning("dead letter with no known source left", extra={"queue": dlq.url})
                dlq.left += 1
                continue
            by_source.setdefault(url, []).append(message)
        for url, messages in by_source.items():
            sent = _send(sqs, url, messages)
            dlq.left += len(messages) - len(sent)
            if sent:
                deleted = sqs.delete_message_batch(
                    QueueUrl=dlq.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in sent],
                )
                for failure in deleted.get("Failed", []):  # sent but kept: a duplicate later
                    log.warning("a redriven message stayed in the DLQ: %s", failure.get("Code"))
                dlq.moved += len(sent)


def _send(
    sqs: SQSClient, url: str, messages: list[MessageTypeDef]
) -> list[tuple[int, MessageTypeDef]]:
    """Send copies to `url`; returns the messages whose copy SQS accepted."""
    entries: list[SendMessageBatchRequestEntryTypeDef] = []
    for i, m in enumerate(messages):
        entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(i), "MessageBody": m["Body"]}
        if m.get("MessageAttributes"):
            entry["MessageAttributes"] = m["MessageAttributes"]
        entries.append(entry)
    reply = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    ok = {int(s["Id"]) for s in reply.get("Successful", [])}
    for failure in reply.get("Failed", []):
        log.warning("could not redrive a message: %s", failure.get("Code"))
    return [(i, messages[i]) for i in sorted(ok)]
