"""Run jobs: claim, keep the lease alive while working, record the outcome.

A job handler takes the claimed job and its lease and returns the events that record its
result; they are committed together with SUCCEEDED. A SlipwayError fails the attempt with
its stable code (no retry when it is permanent, i.e. bad input); any other exception is
transient and retried with backoff until the job's attempts run out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from slipway import jobs
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.jobs import Job

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the job over (this one's lease expired)."""


@dataclass
class Lease:
    job: Job
    worker: str
    seconds: int
    lost: bool = False
    progress: dict[str, Any] = field(default_factory=dict)  # reported with each heartbeat
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
        """Call between steps of long work: stops it early if the lease was lost."""
        if self.lost:
            raise LeaseLost(str(self.job.id))

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not jobs.heartbeat(self.job, self.worker, self.seconds, self.progress):
                    self.lost = True
                    return
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat failed for job %s", self.job.id, exc_info=True)

    def __enter__(self) -> Lease:
        threading.Thread(target=self._renew, name=f"lease-{self.job.id}", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


Handler = Callable[[Job, Lease], Sequence[NewEvent]]


def run_one(job: Job, handler: Handler, worker: str) -> str | None:
    """Run a claimed job to its outcome; returns the job's new status (None: lease lost)."""
    log.info(
        "job started", extra={"job_id": str(job.id), "type": job.type, "attempt": job.attempt_count}
    )
    try:
        with Lease(job, worker, settings().job_lease_seconds) as lease:
            results = handler(job, lease)
    except LeaseLost:
        log.warning("lease lost; another worker owns job %s now", job.id)
        return None
    except SlipwayError as exc:
        log.info("job attempt failed", extra={"job_id": str(job.id), "code": exc.code.value})
        return jobs.fail(job, worker, exc)
    except Exception as exc:
        log.exception("job attempt crashed", extra={"job_id": str(job.id)})
        error = SlipwayError(Code.TRANSIENT, f"{type(exc).__name__}: {exc}"[:500], permanent=False)
        return jobs.fail(job, worker, error)
    return "SUCCEEDED" if jobs.succeed(job, worker, results) else None


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


def signal_handler(job_type: str, handler: Handler) -> LambdaHandler:
    """The Lambda handler of a worker function: each message on its queue is a signal
    that jobs of `job_type` are due; each one drains them while time allows."""
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    processor = BatchProcessor(event_type=EventType.SQS)

    def handle(event: dict[str, Any], context: Any) -> Mapping[str, Any]:
        def on_signal(record: Any) -> None:  # Powertools passes it by this name
            drain(
                job_type,
                handler,
                f"{job_type}:{context.aws_request_id}",
                lambda: context.get_remaining_time_in_millis() / 1000,
            )

        return process_partial_response(event, on_signal, processor, context)

    return handle
