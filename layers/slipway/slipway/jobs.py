"""The job queue: one table, claimed with FOR UPDATE SKIP LOCKED, leases, retries.

A job is committed in the same transaction as the change that causes it; `signal` then
wakes a worker (an SQS message naming the job type). Signals are hints: a lost one is
re-sent by the sweeper, a duplicate finds nothing to claim. docs/jobs.md has the rules.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import boto3
from psycopg.types.json import Jsonb

from slipway import cursors, db, errors, queries
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent, rfc3339
from slipway.projections import DbStore, record

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
SQL = queries.load("jobs")
DEFAULT_MAX_ATTEMPTS = 3
BACKOFF_CAP_SECONDS = 900.0  # also SQS's longest message delay
# What a job says about an unexpected failure (worker.public_error); the details are logged.
TRANSIENT_MESSAGE = "the attempt failed unexpectedly; the details are in the worker's log"


@dataclass(frozen=True)
class Job:
    id: UUID
    type: str
    owner: str
    upload_id: UUID | None
    status: str
    payload: dict[str, Any]
    attempt_count: int
    max_attempts: int
    locked_by: str | None
    lease_expires_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    next_retry_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def payload_uuid(self, key: str) -> UUID:
        return UUID(str(self.payload[key]))

    @property
    def error(self) -> dict[str, str] | None:
        if self.status in ("FAILED", "QUEUED") and self.last_error_code:
            message = self.last_error_message or ""
            if self.last_error_code == Code.TRANSIENT:  # rows from before: exception text
                message = TRANSIENT_MESSAGE
            return {"code": self.last_error_code, "message": message}
        return None

    def to_api(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return rfc3339(value) if value else None

        return {
            "jobId": str(self.id),
            "uploadId": str(self.upload_id) if self.upload_id else None,
            "type": self.type,
            "status": self.status,
            "attemptCount": self.attempt_count,
            "maxAttempts": self.max_attempts,
            "error": self.error,
            "createdAt": ts(self.created_at),
            "updatedAt": ts(self.updated_at),
            "startedAt": ts(self.started_at),
            "finishedAt": ts(self.finished_at),
            "nextRetryAt": ts(self.next_retry_at),
            "progress": self.progress,
        }


def queued(
    job_type: str,
    owner: str,
    upload_id: UUID | None,
    payload: Mapping[str, Any],
    *,
    job_id: UUID | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> NewEvent:
    """The event that enqueues a job; record it in the transaction of its cause."""
    return NewEvent(
        "v1.job.queued",
        "job",
        job_id or uuid4(),
        {
            "type": job_type,
            "owner": owner,
            "uploadId": str(upload_id) if upload_id else None,
            "payload": dict(payload),
            "maxAttempts": max_attempts,
        },
    )


def get(job_id: UUID, owner: str | None = None) -> Job:
    with db.connect() as conn:
        row = conn.execute(SQL["get"], {"id": job_id}).fetchone()
    if row is None or (owner is not None and row["owner"] != owner):
        raise errors.not_found("job")
    return Job.from_row(row)


def list_for_owner(
    owner: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    job_type: str | None = None,
    upload_id: UUID | None = None,
) -> dict[str, Any]:
    """A page of the owner's jobs, newest first; `next` is the cursor of the page after."""
    after_created, after_id = cursors.decode(cursor)
    params = {
        "owner": owner,
        "status": status,
        "type": job_type,
        "upload_id": upload_id,
        "after_created": after_created,
        "after_id": after_id,
        "limit": limit + 1,
    }
    with db.connect() as conn:
        rows = [Job.from_row(r) for r in conn.execute(SQL["list_for_owner"], params)]
    page = rows[:limit]
    return {
        "jobs": [j.to_api() for j in page],
        "next": cursors.encode(page[-1].created_at, page[-1].id) if len(rows) > limit else None,
    }


def for_upload(conn: db.Connection, upload_id: UUID) -> list[Job]:
    return [Job.from_row(r) for r in conn.execute(SQL["for_upload"], {"upload_id": upload_id})]


def _terminal_events(job: Job, code: str, message: str) -> list[NewEvent]:
    """What else ends with the job when it fails or is cancelled for good."""
    if job.type == "parse":
        return [
            NewEvent(
                "v1.session.failed",
                "session",
                UUID(job.payload["sessionId"]),
                {
                    "runId": job.payload["runId"],
                    "code": code,
                    "message": message,
                },
            )
        ]
    return []


def claim(job_type: str, worker: str, lease_seconds: int | None = None) -> Job | None:
    """Take the oldest due job of this type (or one whose lease expired), or None."""
    lease = lease_seconds or settings().job_lease_seconds
    while True:
        with db.transaction() as conn:
            row = conn.execute(SQL["claim"], {"type": job_type}).fetchone()
            if row is None:
                return None
            job = Job.from_row(row)
            reclaimed = job.status == "RUNNING"
            if reclaimed and job.attempt_count >= job.max_attempts:
                message = f"the worker of attempt {job.attempt_count} stopped renewing its lease"
                record(
                    conn,
                    f"worker:{worker}",
                    NewEvent(
                        "v1.job.failed",
                        "job",
                        job.id,
                        {"code": Code.WORKER_LOST.value, "message": message},
                    ),
                    *_terminal_events(job, Code.WORKER_LOST.value, message),
                )
                continue
            store = DbStore(conn, known=[("jobs", row)])  # locked by the claim itself
            claimed = NewEvent(
                "v1.job.claimed",
                "job",
                job.id,
                {
                    "worker": worker,
                    "attempt": job.attempt_count + 1,
                    "leaseSeconds": lease,
                    "reclaimed": reclaimed,
                },
            )
            record(conn, f"worker:{worker}", claimed, store=store)
            projected = store.get("jobs", job.id)
            assert projected is not None
            return Job.from_row(projected)


def _lock_own(conn: db.Connection, job: Job, worker: str) -> DbStore | None:
    """The job locked, in a store for recording, if this worker still holds it; None if
    its lease was lost (another worker took the job over)."""
    row = conn.execute(SQL["lock"], {"id": job.id}).fetchone()
    if row is None or row["status"] != "RUNNING" or row["locked_by"] != worker:
        return None
    if row["attempt_count"] != job.attempt_count:
        return None
    return DbStore(conn, known=[("jobs", row)])


def heartbeat(
    job: Job,
    worker: str,
    lease_seconds: int | None = None,
    progress: Mapping[str, Any] | None = None,
) -> bool:
    """Extend the lease (and report progress); False if the job is no longer this worker's.
    A plain row update, no event: only status changes go into the log."""
    lease = lease_seconds or settings().job_lease_seconds
    params = {
        "id": job.id,
        "worker": worker,
        "attempt": job.attempt_count,
        "lease": lease,
        "progress": Jsonb(dict(progress)) if progress else None,
    }
    with db.transaction() as conn:
        return conn.execute(SQL["heartbeat"], params).fetchone() is not None


def succeed(job: Job, worker: str, results: Iterable[NewEvent] = ()) -> bool:
    """Mark the job SUCCEEDED together with its results; False if the lease was lost."""
    with db.transaction() as conn:
        store = _lock_own(conn, job, worker)
        if store is None:
            return False
        done = NewEvent("v1.job.succeeded", "job", job.id, {"worker": worker})
        record(conn, f"worker:{worker}", *results, done, store=store)
        return True


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: 5 s, 10 s, 20 s … (×0.5–1.0), capped at 15 min."""
    base = settings().backoff_base_seconds
    ceiling = min(BACKOFF_CAP_SECONDS, base * 2.0 ** max(attempt - 1, 0))
    return round(ceiling * random.uniform(0.5, 1.0), 3)


def fail(job: Job, worker: str, error: SlipwayError) -> str | None:
    """Record a failed attempt: retry later if the error is transient and attempts remain,
    else FAILED for good. Returns the new status, or None if the lease was lost."""
    code, message = error.code.value, error.message
    delay = 0.0
    with db.transaction() as conn:
        store = _lock_own(conn, job, worker)
        if store is None:
            return None
        current = Job.from_row(store.get("jobs", job.id) or {})
        if not error.permanent and current.attempt_count < current.max_attempts:
            delay = backoff_seconds(current.attempt_count)
            retry = NewEvent(
                "v1.job.retry_scheduled",
                "job",
                job.id,
                {"code": code, "message": message, "delaySeconds": delay},
            )
            record(conn, f"worker:{worker}", retry, store=store)
            status = "QUEUED"
        else:
            failed = NewEvent("v1.job.failed", "job", job.id, {"code": code, "message": message})
            record(
                conn,
                f"worker:{worker}",
                failed,
                *_terminal_events(current, code, message),
                store=store,
            )
            status = "FAILED"
    if status == "QUEUED":
        signal([job.type], delay_seconds=int(delay) + 1)
    return status


def cancel(job_id: UUID, owner: str) -> Job:
    with db.transaction() as conn:
        row = conn.execute(SQL["lock"], {"id": job_id}).fetchone()
        if row is None or row["owner"] != owner:
            raise errors.not_found("job")
        job = Job.from_row(row)
        if job.status != "QUEUED":
            raise errors.conflict(
                Code.JOB_NOT_CANCELLABLE,
                f"only a QUEUED job can be cancelled; this one is {job.status}",
            )
        message = f"cancelled by {owner}"
        record(
            conn,
            f"user:{owner}",
            NewEvent("v1.job.cancelled", "job", job.id, {"by": owner}),
            *_terminal_events(job, "CANCELLED", message),
        )
    return get(job_id)


RETRYABLE = ("FAILED", "CANCELLED")


def retry(job_id: UUID, owner: str) -> Job:
    """Re-queue a FAILED or CANCELLED job with a fresh attempt budget, due now."""
    with db.transaction() as conn:
        row = conn.execute(SQL["lock"], {"id": job_id}).fetchone()
        if row is None or row["owner"] != owner:
            raise errors.not_found("job")
        job = Job.from_row(row)
        if job.status not in RETRYABLE:
            raise errors.conflict(
                Code.JOB_NOT_RETRYABLE,
                f"only a FAILED or CANCELLED job can be retried; this one is {job.status}",
            )
        requeued = NewEvent(
            "v1.job.requeued",
            "job",
            job.id,
            {"by": owner, "previousStatus": job.status, "previousError": job.error},
        )
        store = DbStore(conn, known=[("jobs", row)])
        record(conn, f"user:{owner}", requeued, store=store)
        projected = store.get("jobs", job.id)
        assert projected is not None
    signal([job.type])
    return Job.from_row(projected)  # as re-queued: a worker may already have claimed it


def due_types() -> list[str]:
    with db.connect() as conn:
        return [r["type"] for r in conn.execute(SQL["due_types"])]


@cache
def _sqs() -> SQSClient:
    client: SQSClient = boto3.client("sqs")
    return client


def signal(job_types: Iterable[str], delay_seconds: int = 0) -> None:
    """Wake a worker for each type. Best effort by design: the jobs are already committed,
    and the sweeper re-signals due jobs, so a failed send is logged, not raised."""
    for job_type in set(job_types):
        url = settings().job_queue_urls.get(job_type)
        if not url:
            continue
        try:
            _sqs().send_message(
                QueueUrl=url,
                MessageBody=json.dumps({"jobType": job_type}),
                DelaySeconds=min(max(delay_seconds, 0), int(BACKOFF_CAP_SECONDS)),
            )
        except Exception:
            log.warning("could not signal %s workers; the sweeper will", job_type, exc_info=True)
