"""Run jobs: claim, keep the lease alive while working, record the outcome.

A job handler takes the claimed job and its lease and returns the events that record its
result; they are committed together with SUCCEEDED. A SlipwayError fails the attempt with
its stable code (no retry when it is permanent, i.e. bad input); any other exception is
transient and retried with backoff until the job's attempts run out. An unexpected
exception is logged with the job id and recorded only as a stable code and a fixed
message (`public_error`): its text (endpoints, paths, SQL) never reaches the API.

What an attempt writes outside the database is fenced by the lease: the handler writes
under a place of its own attempt and registers how to remove it (`Lease.discard`); only a
success recorded under the lease (`jobs.succeed`) makes it what is served, and the writes
of an attempt that did not end so (failed, or its lease lost) are removed.

A running job can be asked to stop (`jobs.request_cancel`): the lease's thread learns it
at its next look (`jobs.watch`, every few seconds, or a heartbeat), sets `lost` so that
writers stop, and `Lease.check` raises `JobCancelled` at the handler's next checkpoint;
the worker then records `v1.job.cancelled` under its lease and removes what it wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from slipway import jobs, logs, messages, metrics, tracing
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.jobs import Job

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the job over (this one's lease expired)."""


class JobCancelled(LeaseLost):
    """A cancel of the job was requested: stop as for a lost lease, then record it."""


@dataclass
class Lease:
    job: Job
    worker: str
    seconds: int
    lost: bool = False  # stop writing: the lease was lost, or a cancel was requested
    cancelled: bool = False  # a cancel was requested (`lost` is set too)
    progress: dict[str, Any] = field(default_factory=dict)  # reported with each heartbeat
    # what removes this attempt's writes if its result is not recorded (failed, lease lost)
    discard: list[Callable[[], None]] = field(default_factory=list)
    # what removes writes at places shared by the job's attempts (a session's Parquet):
    # run only when this attempt ended the job for good (FAILED or CANCELLED), when no
    # other attempt can have succeeded with them
    discard_if_ended: list[Callable[[], None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def detached(cls, job_type: str, worker: str = "local", seconds: int = 900) -> Lease:
        """A lease on a job that is not in the queue (tools, tests, benchmarks): the work
        runs as in a worker, nothing is renewed or recorded."""
        now = datetime.now(UTC)
        fields: dict[str, Any] = dict.fromkeys(Job.__dataclass_fields__)
        job = Job(
            **fields
            | {
                "id": uuid4(),
                "type": job_type,
                "owner": worker,
                "status": "RUNNING",
                "payload": {},
                "attempt_count": 1,
                "max_attempts": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        return cls(job, worker, seconds)

    def check(self) -> None:
        """Call between steps of long work: stops it early if the lease was lost
        (`LeaseLost`) or a cancel was requested (`JobCancelled`)."""
        if self.cancelled:
            raise JobCancelled(str(self.job.id))
        if self.lost:
            raise LeaseLost(str(self.job.id))

    def _renew(self) -> None:
        """Renew the lease every third of its length; in between, look every
        `job_cancel_poll_seconds` whether a cancel was requested (a read, no update)."""
        beat_every = self.seconds / 3
        look_every = min(beat_every, settings().job_cancel_poll_seconds)
        last_beat = time.monotonic()
        while not self._stop.wait(look_every):
            try:
                if time.monotonic() - last_beat >= beat_every * 0.99:
                    beat = jobs.renew(self.job, self.worker, self.seconds, self.progress)
                    last_beat = time.monotonic()
                elif not self.cancelled:
                    beat = jobs.watch(self.job, self.worker)
                else:
                    continue
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat failed for job %s", self.job.id, exc_info=True)
                continue
            if beat is None:
                self.lost = True
                return
            if beat.cancel_requested and not self.cancelled:
                log.info("cancel requested; stopping", extra={"job_id": str(self.job.id)})
                self.cancelled = self.lost = True  # keeps renewing until the worker stops

    def __enter__(self) -> Lease:
        threading.Thread(target=self._renew, name=f"lease-{self.job.id}", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


Handler = Callable[[Job, Lease], Sequence[NewEvent]]


def public_error(exc: Exception) -> SlipwayError:
    """An unexpected exception as a job records it: a stable code and a fixed message.
    The exception's own text stays in the log, with the job id."""
    if isinstance(exc, BotoCoreError | ClientError):
        message = "object storage could not be reached or refused a request"
        return SlipwayError(Code.STORAGE_FAILED, message, permanent=False)
    if isinstance(exc, psycopg.OperationalError):
        return SlipwayError(Code.UNAVAILABLE, "the database could not be reached", permanent=False)
    return SlipwayError(Code.TRANSIENT, jobs.TRANSIENT_MESSAGE, permanent=False)


def _attempt(job: Job, handler: Handler, lease: Lease) -> str | None:
    try:
        with lease:
            results = handler(job, lease)
    except JobCancelled:
        if jobs.record_cancelled(job, lease.worker):
            log.info("job cancelled at a checkpoint", extra={"job_id": str(job.id)})
            return "CANCELLED"
        log.warning("lease lost before the cancel was recorded; job %s", job.id)
        return None
    except LeaseLost:
        log.warning("lease lost; another worker owns job %s now", job.id)
        return None
    except SlipwayError as exc:
        log.info("job attempt failed", extra={"job_id": str(job.id), "code": exc.code.value})
        return jobs.fail(job, lease.worker, exc)
    except Exception as exc:
        error = public_error(exc)
        log.exception(
            "job attempt crashed", extra={"job_id": str(job.id), "code": error.code.value}
        )
        return jobs.fail(job, lease.worker, error)
    if jobs.succeed(job, lease.worker, results):
        metrics.job_results(job.type, results)
        return "SUCCEEDED"
    now = jobs.get(job.id)
    if now.status == "CANCELLED" and now.attempt_count == job.attempt_count:
        # asked to stop just before the end: succeed recorded the cancel instead
        log.info("cancel requested before the result was recorded", extra={"job_id": str(job.id)})
        return "CANCELLED"
    log.warning("lease lost before the result was recorded; job %s", job.id)
    return None


def run_one(job: Job, handler: Handler, worker: str) -> str | None:
    """Run a claimed job to its outcome; returns the job's new status (None: lease lost).
    Unless it succeeded, what the attempt registered in `lease.discard` is removed (and,
    if it ended the job as FAILED or CANCELLED, what it registered in `discard_if_ended`).
    It logs under the correlation id the job was enqueued with, in a trace span of its own."""
    upload = str(job.upload_id) if job.upload_id else None
    with (
        logs.correlated(job.payload.get("correlationId")),
        tracing.span("job", job_id=str(job.id), job_type=job.type, upload_id=upload),
    ):
        return _run(job, handler, worker)


def _run(job: Job, handler: Handler, worker: str) -> str | None:
    log.info(
        "job started", extra={"job_id": str(job.id), "type": job.type, "attempt": job.attempt_count}
    )
    lease = Lease(job, worker, settings().job_lease_seconds)
    started = time.monotonic()
    status = _attempt(job, handler, lease)  # if recording raised, the outcome is unknown
    metrics.job_ended(job.type, status, time.monotonic() - started)
    if status != "SUCCEEDED":
        _discard(lease, lease.discard)
    if status in ("FAILED", "CANCELLED"):  # ended for good by this attempt
        _discard(lease, lease.discard_if_ended)
    return status


def _discard(lease: Lease, removals: list[Callable[[], None]]) -> None:
    for remove in removals:
        try:
            remove()
        except Exception:  # best effort: what is left is never served, only stored
            log.warning("could not remove what job %s wrote", lease.job.id, exc_info=True)


def drain(
    job_type: str,
    handler: Handler,
    worker: str,
    time_left: Callable[[], float],
    reserve_seconds: float = 60.0,
) -> int:
    """Claim and run jobs of one type until none is due or time runs short."""
    done = 0
    while time_left() > reserve_seconds:
        job = jobs.claim(job_type, worker)
        if job is None:
            break
        run_one(job, handler, worker)
        done += 1
    return done


LambdaHandler = Callable[[dict[str, Any], Any], Mapping[str, Any]]


def signal_handler(
    job_type: str, handler: Handler, also: Mapping[str, Handler] | None = None
) -> LambdaHandler:
    """The Lambda handler of a worker function: each message on its queue is a signal
    that jobs of `job_type` are due; each one drains them while time allows. `also`: more
    job types signalled on the same queue (a fanned-out slide's regions and finish), all
    drained in turn until none is due."""
    handlers = {job_type: handler, **(also or {})}
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    processor = BatchProcessor(event_type=EventType.SQS)

    def handle(event: dict[str, Any], context: Any) -> Mapping[str, Any]:
        def on_signal(record: Any) -> None:  # Powertools passes it by this name
            # Any message wakes the worker (a signal names no job), so none is poison;
            # one of the wrong shape is only worth a warning.
            messages.check_signal(record, job_type)
            while True:
                done = sum(
                    drain(
                        each,
                        run,
                        f"{job_type}:{context.aws_request_id}",
                        lambda: context.get_remaining_time_in_millis() / 1000,
                    )
                    for each, run in handlers.items()
                )
                if not also or not done:
                    break

        return process_partial_response(event, on_signal, processor, context)

    return handle
