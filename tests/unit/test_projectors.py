"""Projectors are pure functions of (row, event): the same events give the same rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from slipway.events import Event, NewEvent, canonical_cbor
from slipway.projections import MemoryStore, ProjectionError, apply

_seq = itertools.count(1)
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def event(new: NewEvent, at: float = 0.0) -> Event:
    n = next(_seq)
    return Event(
        n,
        T0 + timedelta(seconds=at),
        new.event_type,
        new.subject_kind,
        new.subject_id,
        "test",
        dict(new.payload),
        canonical_cbor(new.payload),
        bytes(32),
        bytes(32),
        bytes(32),
    )


def created(upload_id: UUID, **extra: Any) -> NewEvent:
    payload = {
        "owner": "alice",
        "kind": "slide",
        "filename": "a.tif",
        "contentType": "image/tiff",
        "size": 10,
        "sha256": None,
        "method": "PUT",
        "objectKey": f"incoming/{upload_id}",
        "multipartId": None,
        "partSize": None,
        "partCount": None,
        "checksumParts": False,
        "expiresAt": "2026-11-23T08:15:00Z",
    } | extra
    return NewEvent("v1.upload.created", "upload", upload_id, payload)


def test_upload_lifecycle_and_content_addressing() -> None:
    store = MemoryStore()
    first, second = uuid4(), uuid4()
    digest = {"sha256": "ab" * 32, "blake3": "cd" * 32, "size": 10, "objectKey": "blobs/x"}
    for e in [
        created(first),
        created(second),
        NewEvent("v1.upload.ready", "upload", first, digest | {"deduplicated": False}),
        NewEvent("v1.upload.ready", "upload", second, digest | {"deduplicated": True}),
    ]:
        apply(store, event(e, 1))
    a, b = store.get("uploads", first), store.get("uploads", second)
    assert a and b and a["state"] == b["state"] == "ready"
    assert b["deduplicated"] and not a["deduplicated"]
    assert len(store.tables["blobs"]) == 1, "the same bytes are stored once"
    assert store.get("blobs", bytes.fromhex("ab" * 32))["object_key"] == "blobs/x"  # type: ignore[index]
    assert a["updated_at"] == T0 + timedelta(seconds=1)


def test_job_lifecycle_leases_and_retry_times_come_from_the_events() -> None:
    store, job = MemoryStore(), uuid4()
    steps = [
        (
            0,
            NewEvent(
                "v1.job.queued",
                "job",
                job,
                {"type": "tile", "owner": "a", "uploadId": None, "payload": {}, "maxAttempts": 3},
            ),
        ),
        (
            1,
            NewEvent(
                "v1.job.claimed",
                "job",
                job,
                {"worker": "w1", "attempt": 1, "leaseSeconds": 60, "reclaimed": False},
            ),
        ),
        (2, NewEvent("v1.job.heartbeat", "job", job, {"worker": "w1", "leaseSeconds": 60})),
        (
            3,
            NewEvent(
                "v1.job.retry_scheduled",
                "job",
                job,
                {"code": "TRANSIENT", "message": "x", "delaySeconds": 7.5},
            ),
        ),
    ]
    for at, e in steps:
        apply(store, event(e, at))
    row = store.get("jobs", job)
    assert row is not None
    assert row["status"] == "QUEUED" and row["attempt_count"] == 1
    assert row["next_retry_at"] == T0 + timedelta(seconds=10.5)
    assert row["locked_by"] is None and row["lease_expires_at"] is None
    assert row["last_error_code"] == "TRANSIENT"
    apply(
        store,
        event(
            NewEvent(
                "v1.job.claimed",
                "job",
                job,
                {"worker": "w2", "attempt": 2, "leaseSeconds": 30, "reclaimed": False},
            ),
            20,
        ),
    )
    row = store.get("jobs", job)
    assert row is not None
    assert row["lease_expires_at"] == T0 + timedelta(seconds=50)
    assert row["started_at"] == T0 + timedelta(seconds=1), "first start is kept"
    apply(store, event(NewEvent("v1.job.succeeded", "job", job, {"worker": "w2"}), 21))
    row = store.get("jobs", job)
    assert row is not None and row["status"] == "SUCCEEDED"
    assert row["finished_at"] == T0 + timedelta(seconds=21)


def test_session_failure_reaches_the_run() -> None:
    store, session, run, job = MemoryStore(), uuid4(), uuid4(), uuid4()
    apply(
        store,
        event(
            NewEvent(
                "v1.session.created",
                "session",
                session,
                {"owner": "a", "uploadId": str(uuid4()), "runId": str(run), "jobId": str(job)},
            )
        ),
    )
    row = store.get("telemetry_sessions", session)
    assert row is not None and row["start_time_utc"] == row["end_time_utc"] == row["created_at"]
    apply(
        store,
        event(
            NewEvent(
                "v1.session.failed",
                "session",
                session,
                {"runId": str(run), "code": "CSV_NO_TIME_COLUMN", "message": "no time"},
            )
        ),
    )
    assert store.get("telemetry_sessions", session)["failure_code"] == "CSV_NO_TIME_COLUMN"  # type: ignore[index]
    assert store.get("telemetry_runs", run)["status"] == "failed"  # type: ignore[index]


def test_line_scan_attempts_count_up_and_converge() -> None:
    store, scan, tile = MemoryStore(), uuid4(), uuid4()
    apply(store, event(NewEvent("v1.linescan.scan_created", "line_scan", scan, {"owner": "a"})))
    for _ in range(2):
        apply(
            store,
            event(
                NewEvent(
                    "v1.linescan.tile_attempted", "line_scan_tile", tile, {"scanId": str(scan)}
                )
            ),
        )
    apply(
        store,
        event(
            NewEvent(
                "v1.linescan.tile_failed",
                "line_scan_tile",
                tile,
                {"scanId": str(scan), "error": "boom"},
            )
        ),
    )
    row = store.get("line_scan_tiles", scan, tile)
    assert row is not None and row["state"] == "failed" and row["attempts"] == 2
    apply(
        store,
        event(
            NewEvent("v1.linescan.tile_attempted", "line_scan_tile", tile, {"scanId": str(scan)})
        ),
    )
    apply(
        store,
        event(
            NewEvent(
                "v1.linescan.tile_ready",
                "line_scan_tile",
                tile,
                {"scanId": str(scan), "sha256": "00" * 32, "size": 3, "objectKey": "k"},
            )
        ),
    )
    row = store.get("line_scan_tiles", scan, tile)
    assert row is not None and row["state"] == "ready" and row["attempts"] == 3
    assert row["last_error"] is None


def test_unknown_event_types_and_missing_rows_are_loud() -> None:
    with pytest.raises(ProjectionError, match="no projector"):
        apply(MemoryStore(), event(NewEvent("v1.nothing.happened", "x", None, {})))
    with pytest.raises(ProjectionError, match="missing"):
        apply(
            MemoryStore(),
            event(NewEvent("v1.upload.failed", "upload", uuid4(), {"code": "X", "message": "y"})),
        )


def test_replaying_the_same_events_gives_the_same_rows() -> None:
    upload = uuid4()
    history = [
        event(created(upload)),
        event(
            NewEvent(
                "v1.upload.failed", "upload", upload, {"code": "SIZE_MISMATCH", "message": "m"}
            )
        ),
    ]
    one, two = MemoryStore(), MemoryStore()
    for e in history:
        apply(one, e)
        apply(two, e)
    assert one.tables == two.tables


def test_progress_comes_with_heartbeats_and_a_new_attempt_starts_over() -> None:
    store, job = MemoryStore(), uuid4()
    claim = {"worker": "w", "attempt": 1, "leaseSeconds": 60, "reclaimed": False}
    for e in [
        NewEvent(
            "v1.job.queued",
            "job",
            job,
            {"type": "tile", "owner": "a", "uploadId": None, "payload": {}, "maxAttempts": 3},
        ),
        NewEvent("v1.job.claimed", "job", job, claim),
        NewEvent(
            "v1.job.heartbeat",
            "job",
            job,
            {"worker": "w", "leaseSeconds": 60, "progress": {"tiles": 10}},
        ),
        NewEvent("v1.job.heartbeat", "job", job, {"worker": "w", "leaseSeconds": 60}),
    ]:
        apply(store, event(e))
    assert store.get("jobs", job)["progress"] == {"tiles": 10}  # type: ignore[index]
    apply(store, event(NewEvent("v1.job.claimed", "job", job, claim | {"attempt": 2})))
    assert store.get("jobs", job)["progress"] is None  # type: ignore[index]
