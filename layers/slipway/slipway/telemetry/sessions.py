"""Telemetry sessions: finalising a ready upload into a session, a run and a parse job;
reading sessions back for the API. No pyarrow here (the API imports this)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from slipway import cursors, db, errors, jobs, queries, storage
from slipway.config import settings
from slipway.errors import Code
from slipway.events import NewEvent, rfc3339
from slipway.projections import record

SQL = queries.load("telemetry")
UPLOAD_SQL = queries.load("uploads")
PARSE = "parse"
URL_TTL_SECONDS = 3600


def finalise_events(owner: str, upload_id: UUID) -> list[NewEvent]:
    """Session + processing run + parse job for a ready telemetry upload."""
    session_id, run_id, job_id = uuid4(), uuid4(), uuid4()
    return [
        NewEvent(
            "v1.session.created",
            "session",
            session_id,
            {
                "owner": owner,
                "uploadId": str(upload_id),
                "runId": str(run_id),
                "jobId": str(job_id),
            },
        ),
        jobs.queued(
            PARSE,
            owner,
            upload_id,
            {"sessionId": str(session_id), "runId": str(run_id)},
            job_id=job_id,
        ),
    ]


def finalise(upload_id: UUID, owner: str) -> UUID:
    """Idempotent: the upload's session, created now if it has none yet."""
    with db.transaction() as conn:
        upload = conn.execute(UPLOAD_SQL["lock"], {"id": upload_id}).fetchone()
        if upload is None or upload["owner"] != owner:
            raise errors.not_found("upload")
        if upload["kind"] != "telemetry":
            raise errors.conflict(Code.CONFLICT, "only a telemetry upload can be finalised")
        existing = conn.execute(SQL["by_upload"], {"upload_id": upload_id}).fetchone()
        if existing is not None:
            return UUID(str(existing["id"]))
        if upload["state"] != "ready":
            raise errors.conflict(
                Code.UPLOAD_NOT_READY, f"the upload is {upload['state']}, not ready"
            )
        created = record(conn, f"user:{owner}", *finalise_events(owner, upload_id))
    jobs.signal([PARSE])
    session_id = created[0].subject_id
    assert session_id is not None
    return session_id


def ready_event(
    job: jobs.Job, start: datetime, end: datetime, streams: list[dict[str, Any]]
) -> NewEvent:
    return NewEvent(
        "v1.session.ready",
        "session",
        UUID(job.payload["sessionId"]),
        {
            "runId": job.payload["runId"],
            "startTimeUtc": rfc3339(start),
            "endTimeUtc": rfc3339(end),
            "streams": streams,
        },
    )


def _to_api(conn: db.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
    streams = conn.execute(SQL["streams"], {"session_id": row["id"]}).fetchall()
    body: dict[str, Any] = {
        "sessionId": str(row["id"]),
        "uploadId": str(row["upload_id"]),
        "status": row["status"],
        "startTimeUtc": rfc3339(row["start_time_utc"]),
        "endTimeUtc": rfc3339(row["end_time_utc"]),
        "streams": [
            {
                "name": s["name"],
                "rows": s["rows"],
                "parquetUrl": storage.presign_get(
                    settings().data_bucket, s["object_key"], ttl=URL_TTL_SECONDS
                ),
            }
            for s in streams
        ],
        "createdAt": rfc3339(row["created_at"]),
        "updatedAt": rfc3339(row["updated_at"]),
    }
    if row["status"] == "failed":
        body["failure"] = {"code": row["failure_code"], "message": row["failure_message"]}
    return body


def get(session_id: UUID, owner: str) -> dict[str, Any]:
    with db.connect() as conn:
        row = conn.execute(SQL["get"], {"id": session_id}).fetchone()
        if row is None or row["owner"] != owner:
            raise errors.not_found("session")
        return _to_api(conn, row)


def list_for_owner(owner: str, limit: int, cursor: str | None) -> dict[str, Any]:
    after_created, after_id = cursors.decode(cursor)
    with db.connect() as conn:
        rows = conn.execute(
            SQL["list_for_owner"],
            {
                "owner": owner,
                "after_created": after_created,
                "after_id": after_id,
                "limit": limit + 1,
            },
        ).fetchall()
        page = [_to_api(conn, r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return {
        "sessions": page,
        "next": cursors.encode(last["created_at"], last["id"]) if last else None,
    }
