"""`v1.job.requeued` gives a failed job a fresh attempt budget, due at once."""

from __future__ import annotations

from uuid import uuid4

from slipway.events import NewEvent
from slipway.projections import MemoryStore, apply
from tests.unit.test_projectors import event


def test_a_requeued_job_starts_over_and_keeps_what_it_is() -> None:
    store, job = MemoryStore(), uuid4()
    payload = {
        "type": "tile",
        "owner": "a",
        "uploadId": None,
        "payload": {"k": 1},
        "maxAttempts": 3,
    }
    claim = {"worker": "w1", "attempt": 1, "leaseSeconds": 60, "reclaimed": False}
    for at, new in [
        (0, NewEvent("v1.job.queued", "job", job, payload)),
        (1, NewEvent("v1.job.claimed", "job", job, claim)),
        (2, NewEvent("v1.job.failed", "job", job, {"code": "IMAGE_UNSUPPORTED", "message": "x"})),
    ]:
        apply(store, event(new, at))
    failed = store.get("jobs", job)
    assert failed is not None and failed["status"] == "FAILED"

    requeue = {"by": "a", "previousStatus": "FAILED", "previousError": None}
    apply(store, event(NewEvent("v1.job.requeued", "job", job, requeue), 5))
    row = store.get("jobs", job)
    assert row is not None
    assert (row["status"], row["attempt_count"], row["max_attempts"]) == ("QUEUED", 0, 3)
    assert row["last_error_code"] is None and row["last_error_message"] is None
    assert row["next_retry_at"] is None and row["finished_at"] is None
    assert row["locked_by"] is None and row["lease_expires_at"] is None
    assert row["payload"] == {"k": 1} and row["created_at"] == failed["created_at"]
    assert row["updated_at"] > failed["updated_at"]
