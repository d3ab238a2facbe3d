"""How each event type changes the current-state tables.

Projectors are plain functions of (store, event): everything they write comes from the
event (its payload and timestamp; never its sequence, which the writer does not know),
never from the clock or from outside, so replaying the log reproduces the live tables
exactly. docs/events.md lists the types.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from slipway.events import Event
from slipway.projections.store import Row, Store

Projector = Callable[[Store, Event], None]
PROJECTORS: dict[str, Projector] = {}


def projects(event_type: str) -> Callable[[Projector], Projector]:
    def register(fn: Projector) -> Projector:
        if event_type in PROJECTORS:
            raise ValueError(f"two projectors for {event_type}")
        PROJECTORS[event_type] = fn
        return fn

    return register


class ProjectionError(RuntimeError):
    """The log and the tables disagree: an event refers to a row that is not there."""


def apply(store: Store, event: Event) -> None:
    projector = PROJECTORS.get(event.event_type)
    if projector is None:
        raise ProjectionError(f"no projector for event type {event.event_type}")
    projector(store, event)


def _require(store: Store, table: str, *key: Any) -> Row:
    row = store.get(table, *key)
    if row is None:
        raise ProjectionError(f"{table} {key} missing")
    return row


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _hex(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def _new(event: Event) -> Row:
    return {"created_at": event.created_at, "updated_at": event.created_at}


def _touch(event: Event) -> Row:
    return {"updated_at": event.created_at}


def _after(event: Event, seconds: float) -> datetime:
    return event.created_at + timedelta(seconds=seconds)


# uploads and blobs ----------------------------------------------------------------


@projects("v1.upload.created")
def _upload_created(s: Store, e: Event) -> None:
    p = e.payload
    s.put(
        "uploads",
        {
            "id": e.subject_id,
            "owner": p["owner"],
            "kind": p["kind"],
            "filename": p["filename"],
            "content_type": p["contentType"],
            "size": p["size"],
            "declared_sha256": _hex(p["sha256"]),
            "method": p["method"],
            "object_key": p["objectKey"],
            "multipart_id": p["multipartId"],
            "part_size": p["partSize"],
            "part_count": p["partCount"],
            "checksum_parts": p["checksumParts"],
            "expires_at": _ts(p["expiresAt"]),
            "state": "pending",
            "sha256": None,
            "blake3": None,
            "deduplicated": False,
            "error_code": None,
            "error_message": None,
            **_new(e),
        },
    )


@projects("v1.upload.ready")
def _upload_ready(s: Store, e: Event) -> None:
    p = e.payload
    upload = _require(s, "uploads", e.subject_id)
    sha256, blake3 = bytes.fromhex(p["sha256"]), bytes.fromhex(p["blake3"])
    s.put(
        "uploads",
        upload
        | {
            "state": "ready",
            "sha256": sha256,
            "blake3": blake3,
            "deduplicated": p["deduplicated"],
            **_touch(e),
        },
    )
    if s.get("blobs", sha256) is None:
        s.put(
            "blobs",
            {
                "sha256": sha256,
                "blake3": blake3,
                "size": p["size"],
                "object_key": p["objectKey"],
                "content_type": upload["content_type"],
                "created_at": e.created_at,
            },
        )


@projects("v1.upload.failed")
def _upload_failed(s: Store, e: Event) -> None:
    upload = _require(s, "uploads", e.subject_id)
    s.put(
        "uploads",
        upload
        | {
            "state": "failed",
            "error_code": e.payload["code"],
            "error_message": e.payload["message"],
            **_touch(e),
        },
    )


# jobs --------------------------------------------------------------------------------

_UNLOCKED = {"locked_at": None, "locked_by": None, "lease_expires_at": None}
_NO_CANCEL_REQUEST = {"cancel_requested_at": None, "cancel_requested_by": None}

# Liveness: columns a running job's heartbeat keeps current with a plain update and no
# event (jobs.heartbeat), so the log explains them only as of the last status change.
# Replay sets them as that event did, and its diff ignores them.
LIVENESS: dict[str, tuple[str, ...]] = {"jobs": ("lease_expires_at", "progress")}


# A job due for its first attempt, none run yet: what queuing and a requeue both set
# (built once: replay makes millions of these rows).
_DUE_AFRESH = {
    "status": "QUEUED",
    "attempt_count": 0,
    **_UNLOCKED,
    "last_error_code": None,
    "last_error_message": None,
    "next_retry_at": None,
    "started_at": None,
    "finished_at": None,
    "progress": None,
    **_NO_CANCEL_REQUEST,
}


@projects("v1.job.queued")
def _job_queued(s: Store, e: Event) -> None:
    p = e.payload
    s.put(
        "jobs",
        {
            "id": e.subject_id,
            "type": p["type"],
            "owner": p["owner"],
            "upload_id": _uuid(p["uploadId"]),
            "payload": p["payload"],
            "max_attempts": p["maxAttempts"],
            "parent_id": _uuid(p.get("parentId")),  # a fanned-out slide's region (fanout)
            "result": None,
            **_new(e),
        }
        | _DUE_AFRESH,
    )


@projects("v1.job.waiting")
def _job_waiting(s: Store, e: Event) -> None:
    # A tile job that fanned out: its regions are queued, no claim takes it (fanout).
    p = e.payload
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "WAITING",
            **_UNLOCKED,
            "progress": {"regionsDone": 0, "regions": p["regions"]},
            "result": {"fanoutId": p["fanoutId"], "regions": p["regions"]},
            **_touch(e),
        },
    )


@projects("v1.tile.region_tiled")
def _region_tiled(s: Store, e: Event) -> None:
    # What a region job stored, for its slide's finish job to find (fanout).
    job = _require(s, "jobs", e.subject_id)
    s.put("jobs", job | {"result": dict(e.payload), **_touch(e)})


@projects("v1.job.claimed")
def _job_claimed(s: Store, e: Event) -> None:
    p = e.payload
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "RUNNING",
            "attempt_count": p["attempt"],
            "locked_at": e.created_at,
            "locked_by": p["worker"],
            "lease_expires_at": _after(e, p["leaseSeconds"]),
            "next_retry_at": None,
            "progress": None,  # a new attempt starts over
            "started_at": job["started_at"] or e.created_at,
            **_touch(e),
        },
    )


@projects("v1.job.heartbeat")
def _job_heartbeat(s: Store, e: Event) -> None:
    # Only in logs written before heartbeats became plain updates (LIVENESS).
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "lease_expires_at": _after(e, e.payload["leaseSeconds"]),
            "progress": e.payload.get("progress", job["progress"]),
            **_touch(e),
        },
    )


@projects("v1.job.retry_scheduled")
def _job_retry(s: Store, e: Event) -> None:
    p = e.payload
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "QUEUED",
            **_UNLOCKED,
            "last_error_code": p["code"],
            "last_error_message": p["message"],
            "next_retry_at": _after(e, p["delaySeconds"]),
            **_touch(e),
        },
    )


@projects("v1.job.succeeded")
def _job_succeeded(s: Store, e: Event) -> None:
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "SUCCEEDED",
            **_UNLOCKED,
            "finished_at": e.created_at,
            **_touch(e),
        },
    )


@projects("v1.job.failed")
def _job_failed(s: Store, e: Event) -> None:
    p = e.payload
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "FAILED",
            **_UNLOCKED,
            "last_error_code": p["code"],
            "last_error_message": p["message"],
            "next_retry_at": None,
            "finished_at": e.created_at,
            **_touch(e),
        },
    )


@projects("v1.job.cancelled")
def _job_cancelled(s: Store, e: Event) -> None:
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "status": "CANCELLED",
            **_UNLOCKED,
            "next_retry_at": None,
            "finished_at": e.created_at,
            **_touch(e),
        },
    )


@projects("v1.job.cancel_requested")
def _job_cancel_requested(s: Store, e: Event) -> None:
    # A running job asked to stop: still RUNNING until its worker (or, if it died, the
    # claim that finds its lease expired) records v1.job.cancelled.
    job = _require(s, "jobs", e.subject_id)
    s.put(
        "jobs",
        job
        | {
            "cancel_requested_at": e.created_at,
            "cancel_requested_by": e.payload["by"],
            **_touch(e),
        },
    )


@projects("v1.job.requeued")
def _job_requeued(s: Store, e: Event) -> None:
    # Retried by its owner: a fresh attempt budget, due now, the last run's traces cleared.
    job = _require(s, "jobs", e.subject_id)
    s.put("jobs", job | _DUE_AFRESH | _touch(e))


# slides ------------------------------------------------------------------------------


@projects("v1.slide.tiled")
def _slide_tiled(s: Store, e: Event) -> None:
    p = e.payload
    previous = s.get("slides", e.subject_id)
    s.put(
        "slides",
        {
            "upload_id": e.subject_id,
            "job_id": UUID(p["jobId"]),
            "width": p["width"],
            "height": p["height"],
            "tile_size": p["tileSize"],
            "overlap": p["overlap"],
            "format": p["format"],
            "levels": p["levels"],
            "tile_count": p["tileCount"],
            "tiles_prefix": p["tilesPrefix"],
            "layout": p.get("layout", "files"),  # events before layouts: per-tile objects
            "source": p.get("source"),  # events before v1.1: not read
            "associated": p.get("associated"),
            "created_at": previous["created_at"] if previous else e.created_at,
            "updated_at": e.created_at,
        },
    )


# telemetry ---------------------------------------------------------------------------


@projects("v1.session.created")
def _session_created(s: Store, e: Event) -> None:
    p = e.payload
    # Seed §4: start/end hold the creation time until the first run succeeds.
    s.put(
        "telemetry_sessions",
        {
            "id": e.subject_id,
            "owner": p["owner"],
            "upload_id": UUID(p["uploadId"]),
            "status": "processing",
            "start_time_utc": e.created_at,
            "end_time_utc": e.created_at,
            "failure_code": None,
            "failure_message": None,
            **_new(e),
        },
    )
    s.put(
        "telemetry_runs",
        {
            "id": UUID(p["runId"]),
            "session_id": e.subject_id,
            "job_id": UUID(p["jobId"]),
            "status": "processing",
            "error_code": None,
            "error_detail": None,
            **_new(e),
        },
    )


@projects("v1.session.ready")
def _session_ready(s: Store, e: Event) -> None:
    p = e.payload
    session = _require(s, "telemetry_sessions", e.subject_id)
    s.put(
        "telemetry_sessions",
        session
        | {
            "status": "ready",
            "start_time_utc": _ts(p["startTimeUtc"]),
            "end_time_utc": _ts(p["endTimeUtc"]),
            "failure_code": None,
            "failure_message": None,
            **_touch(e),
        },
    )
    run = _require(s, "telemetry_runs", UUID(p["runId"]))
    s.put("telemetry_runs", run | {"status": "succeeded", **_touch(e)})
    for stream in p["streams"]:
        s.put(
            "telemetry_streams",
            {
                "session_id": e.subject_id,
                "name": stream["name"],
                "rows": stream["rows"],
                "object_key": stream["objectKey"],
                "created_at": e.created_at,
            },
        )


@projects("v1.session.failed")
def _session_failed(s: Store, e: Event) -> None:
    p = e.payload
    session = _require(s, "telemetry_sessions", e.subject_id)
    s.put(
        "telemetry_sessions",
        session
        | {
            "status": "failed",
            "failure_code": p["code"],
            "failure_message": p["message"],
            **_touch(e),
        },
    )
    run = _require(s, "telemetry_runs", UUID(p["runId"]))
    s.put(
        "telemetry_runs",
        run
        | {
            "status": "failed",
            "error_code": p["code"],
            "error_detail": p["message"],
            **_touch(e),
        },
    )


# line-scan tiles ---------------------------------------------------------------------


@projects("v1.linescan.scan_created")
def _scan_created(s: Store, e: Event) -> None:
    # A scan keeps the owner whose first PUT created it. Writers claim the scan under a lock,
    # but a log may hold a second `scan_created` from before they did: it changes nothing.
    if s.get("line_scans", e.subject_id) is not None:
        return
    s.put(
        "line_scans",
        {
            "id": e.subject_id,
            "owner": e.payload["owner"],
            "created_at": e.created_at,
        },
    )


@projects("v1.linescan.tile_attempted")
def _tile_attempted(s: Store, e: Event) -> None:
    scan_id = UUID(e.payload["scanId"])
    tile = s.get("line_scan_tiles", scan_id, e.subject_id)
    base: Row = tile or {
        "scan_id": scan_id,
        "tile_id": e.subject_id,
        "attempts": 0,
        "last_error": None,
        "sha256": None,
        "size": None,
        "object_key": None,
        "created_at": e.created_at,
    }
    s.put(
        "line_scan_tiles",
        base
        | {
            "state": "pending",
            "attempts": base["attempts"] + 1,
            "last_attempt_at": e.created_at,
            **_touch(e),
        },
    )


@projects("v1.linescan.tile_ready")
def _tile_ready(s: Store, e: Event) -> None:
    p = e.payload
    tile = _require(s, "line_scan_tiles", UUID(p["scanId"]), e.subject_id)
    s.put(
        "line_scan_tiles",
        tile
        | {
            "state": "ready",
            "last_error": None,
            "sha256": bytes.fromhex(p["sha256"]),
            "size": p["size"],
            "object_key": p["objectKey"],
            **_touch(e),
        },
    )


@projects("v1.linescan.tile_failed")
def _tile_failed(s: Store, e: Event) -> None:
    tile = _require(s, "line_scan_tiles", UUID(e.payload["scanId"]), e.subject_id)
    s.put(
        "line_scan_tiles", tile | {"state": "failed", "last_error": e.payload["error"], **_touch(e)}
    )
