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
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import boto3
from psycopg.types.json import Jsonb

from slipway import cursors, db, errors, logs, metrics, queries
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
FANOUT_TYPES = ("tile", "tile_region", "tile_finish")  # slipway.fanout's hooks


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
    cancel_requested_at: datetime | None = None  # RUNNING, asked to stop (request_cancel)
    cancel_requested_by: str | None = None

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
            "status": "RUNNING" if self.status == "WAITING" else self.status,  # fan-out
            "attemptCount": self.attempt_count,
            "maxAttempts": self.max_attempts,
            "error": self.error,
            "createdAt": ts(self.created_at),
            "updatedAt": ts(self.updated_at),
            "startedAt": ts(self.started_at),
            "finishedAt": ts(self.finished_at),
            "nextRetryAt": ts(self.next_retry_at),
            "progress": self.progress,
            "cancelRequestedAt": ts(self.cancel_requested_at),
            # what ties the job to the request that caused it (docs/operations.md)
            "correlationId": self._text("correlationId"),
            "traceId": self._text("traceId"),
        }

    def _text(self, key: str) -> str | None:
        value = self.payload.get(key)
        return value if isinstance(value, str) else None


def queued(
    job_type: str,
    owner: str,
    upload_id: UUID | None,
    payload: Mapping[str, Any],
    *,
    job_id: UUID | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    parent_id: UUID | None = None,
) -> NewEvent:
    """The event that enqueues a job; record it in the transaction of its cause. A child
    job (a fanned-out slide's region: slipway.fanout) names its parent."""
    body: dict[str, Any] = {
        "type": job_type,
        "owner": owner,
        "uploadId": str(upload_id) if upload_id else None,
        "payload": logs.correlation() | dict(payload),  # the worker logs under its id
        "maxAttempts": max_attempts,
    }
    if parent_id is not None:
        body["parentId"] = str(parent_id)
    return NewEvent("v1.job.queued", "job", job_id or uuid4(), body)


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


def _terminal_events(
    job: Job, code: str, message: str, conn: db.Connection | None = None
) -> list[NewEvent]:
    """What else ends with the job when it fails or is cancelled for good (with `conn`,
    the fan-out's cascade too: slipway.fanout.on_end)."""
    if conn is not None and job.type in FANOUT_TYPES:
        from slipway import fanout

        return fanout.on_end(conn, job, code, message)
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
            if reclaimed and job.cancel_requested_at is not None:  # its worker died
                stopped = _cancelled_events(job, conn, stop="lease_expired")
                record(conn, f"worker:{worker}", *stopped)
                continue
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
                    *_terminal_events(job, Code.WORKER_LOST.value, message, conn),
                )
                metrics.job_attempt_failed(job.type, "FAILED", Code.WORKER_LOST.value)
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


@dataclass(frozen=True)
class Beat:
    """What a running attempt learns from a heartbeat (`renew`) or a `watch`."""

    cancel_requested: bool


def renew(
    job: Job,
    worker: str,
    lease_seconds: int | None = None,
    progress: Mapping[str, Any] | None = None,
) -> Beat | None:
    """Extend the lease (and report progress); None if the job is no longer this worker's.
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
        row = conn.execute(SQL["heartbeat"], params).fetchone()
    return None if row is None else Beat(row["cancel_requested_at"] is not None)


def heartbeat(
    job: Job,
    worker: str,
    lease_seconds: int | None = None,
    progress: Mapping[str, Any] | None = None,
) -> bool:
    """`renew`: False if the job is no longer this worker's."""
    return renew(job, worker, lease_seconds, progress) is not None


def watch(job: Job, worker: str) -> Beat | None:
    """Between beats, a read: None if the job is no longer this worker's."""
    params = {"id": job.id, "worker": worker, "attempt": job.attempt_count}
    with db.connect() as conn:
        row = conn.execute(SQL["watch"], params).fetchone()
    return None if row is None else Beat(row["cancel_requested_at"] is not None)


def succeed(job: Job, worker: str, results: Iterable[NewEvent] = ()) -> bool:
    """Mark the job SUCCEEDED together with its results; False if the lease was lost, or
    if a cancel was requested meanwhile: then the job ends CANCELLED, its results unused."""
    with db.transaction() as conn:
        store = _lock_own(conn, job, worker)
        if store is None:
            return False
        current = Job.from_row(store.get("jobs", job.id) or {})
        if current.cancel_requested_at is not None:
            record(conn, f"worker:{worker}", *_cancelled_events(current, conn), store=store)
            return False
        results = list(results)
        done = NewEvent("v1.job.succeeded", "job", job.id, {"worker": worker})
        # a tile job that fanned out ends WAITING, not SUCCEEDED (its children are queued)
        waits = any(e.event_type == "v1.job.waiting" and e.subject_id == job.id for e in results)
        woken = [e.payload["type"] for e in results if e.event_type == "v1.job.queued"]
        record(conn, f"worker:{worker}", *results, *([] if waits else [done]), store=store)
        if job.type in FANOUT_TYPES:
            from slipway import fanout

            after, more = fanout.after_success(conn, current, worker)
            woken += more
            if after:
                record(conn, f"worker:{worker}", *after)
    for job_type in woken:  # a message per queued child: as many workers wake (fan-out)
        signal([job_type])
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
        if current.cancel_requested_at is not None:  # asked to stop: no retry, cancelled
            record(conn, f"worker:{worker}", *_cancelled_events(current, conn), store=store)
            return "CANCELLED"
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
                *_terminal_events(current, code, message, conn),
                store=store,
            )
            status = "FAILED"
    metrics.job_attempt_failed(job.type, status, code)
    if status == "QUEUED":
        signal([job.type], delay_seconds=int(delay) + 1)
    return status


# cancelling (docs/jobs.md#cancelling-a-running-job) --------------------------------------

CANCELLABLE = ("QUEUED", "RUNNING")


def _cancelled_events(job: Job, conn: db.Connection | None = None, **how: Any) -> list[NewEvent]:
    """`v1.job.cancelled` and what ends with the job. A running job's cancel is recorded
    by its worker once it stopped (`stop: checkpoint`), or by the claim that found its
    lease expired (`stop: lease_expired`); `by` is whoever asked."""
    by = job.cancel_requested_by or job.owner
    payload: dict[str, Any] = {"by": by}
    if job.status == "RUNNING":
        payload |= {"attempt": job.attempt_count, "stop": how.get("stop", "checkpoint")}
    return [
        NewEvent("v1.job.cancelled", "job", job.id, payload),
        *_terminal_events(job, "CANCELLED", f"cancelled by {by}", conn),
    ]


def request_cancel(
    conn: db.Connection, job_id: UUID, by: str, *, actor: str | None = None, strict: bool = True
) -> Job:
    """Cancel one job by id, in the caller's transaction (its row locked): a QUEUED job is
    CANCELLED at once; a RUNNING one gets `v1.job.cancel_requested` (once), and its worker
    stops at its next checkpoint and records `v1.job.cancelled` itself. An ended job is
    `409 JOB_NOT_CANCELLABLE`, or with `strict=False` returned as it is (a cascade skips
    it). Returns the job as it is now: CANCELLED, or RUNNING with `cancel_requested_at`."""
    row = conn.execute(SQL["lock"], {"id": job_id}).fetchone()
    if row is None:
        raise errors.not_found("job")
    job = Job.from_row(row)
    if job.status in ("QUEUED", "WAITING"):  # WAITING: a fanned-out tile job (fanout)
        events = _cancelled_events(replace(job, cancel_requested_by=by), conn)
    elif job.status == "RUNNING" and job.cancel_requested_at is None:
        asked = {"by": by, "attempt": job.attempt_count}
        events = [NewEvent("v1.job.cancel_requested", "job", job.id, asked)]
    elif job.status == "RUNNING":  # asked already: the first request stands
        return job
    elif strict:
        raise errors.conflict(
            Code.JOB_NOT_CANCELLABLE,
            f"only a QUEUED or RUNNING job can be cancelled; this one is {job.status}",
        )
    else:
        return job
    store = DbStore(conn, known=[("jobs", row)])
    record(conn, actor or f"user:{by}", *events, store=store)
    projected = store.get("jobs", job.id)
    assert projected is not None
    return Job.from_row(projected)


def cancel(job_id: UUID, owner: str) -> Job:
    """The owner's cancel (`POST /v1/jobs/{id}/cancel`): `request_cancel` on their job."""
    with db.transaction() as conn:
        row = conn.execute(SQL["get"], {"id": job_id}).fetchone()
        if row is None or row["owner"] != owner:
            raise errors.not_found("job")
        return request_cancel(conn, job_id, owner)


def record_cancelled(job: Job, worker: str) -> bool:
    """The worker's side: it stopped at a checkpoint after a cancel was requested; the job
    ends CANCELLED (while this worker still holds it). False if the lease was lost."""
    with db.transaction() as conn:
        store = _lock_own(conn, job, worker)
        if store is None:
            return False
        current = Job.from_row(store.get("jobs", job.id) or {})
        record(conn, f"worker:{worker}", *_cancelled_events(current, conn), store=store)
        return True


RETRYABLE = ("FAILED", "CANCELLED")


def retry(job_id: UUID, owner: str, *, operator: bool = False) -> Job:
    """Re-queue a FAILED or CANCELLED job with a fresh attempt budget, due now. With
    `operator` (an ops:write token), `owner` is the operator, who may retry any owner's
    job; the log names them `operator:<sub>`."""
    with db.transaction() as conn:
        row = conn.execute(SQL["lock"], {"id": job_id}).fetchone()
        if row is None or (row["owner"] != owner and not operator):
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
        record(conn, f"{'operator' if operator else 'user'}:{owner}", requeued, store=store)
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
