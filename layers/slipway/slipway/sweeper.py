"""Scheduled repairs: nothing is left to a notification or a signal alone.

- pending uploads whose bytes are in storage are verified (a lost notification);
- pending uploads past their deadline fail (`UPLOAD_EXPIRED` / `UPLOAD_ABANDONED`, and
  their multipart upload is aborted);
- objects nothing references (incoming leftovers, unrecorded blobs, stray multipart
  uploads) are deleted after a grace period;
- due jobs are signalled again (a lost or failed wake-up).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from slipway import db, jobs, queries, storage, uploads
from slipway.config import settings
from slipway.errors import Code

log = logging.getLogger(__name__)
SQL = queries.load("uploads")
ACTOR = "fn:sweeper"


@dataclass
class Report:
    verified: int = 0
    expired: int = 0
    aborted: int = 0
    orphans_deleted: int = 0
    signalled: list[str] = field(default_factory=list)


def check_pending(report: Report, limit: int = 200) -> None:
    s = settings()
    now = datetime.now(UTC)
    grace = timedelta(seconds=s.notification_grace_seconds)
    with db.connect() as conn:
        rows = conn.execute(
            SQL["pending_to_check"], {"min_age": s.notification_grace_seconds, "limit": limit}
        ).fetchall()
    for row in rows:
        upload = uploads.Upload.from_row(row)
        if storage.head(s.uploads_bucket, upload.object_key) is not None:
            uploads.verify(upload.id, ACTOR)
            report.verified += 1
        elif upload.expires_at + grace < now:
            if upload.method == "MULTIPART" and upload.multipart_id:
                storage.abort_multipart(s.uploads_bucket, upload.object_key, upload.multipart_id)
                report.aborted += 1
                uploads.fail(
                    upload.id,
                    Code.UPLOAD_ABANDONED,
                    "the multipart upload was not completed in time",
                    ACTOR,
                )
            else:
                uploads.fail(
                    upload.id,
                    Code.UPLOAD_EXPIRED,
                    "nothing was uploaded before the URL expired",
                    ACTOR,
                )
            report.expired += 1


def _upload_id(key: str) -> UUID | None:
    return uploads.upload_id_from_key(settings().uploads_bucket, key)


def delete_orphans(report: Report) -> None:
    s = settings()
    cutoff = datetime.now(UTC) - timedelta(seconds=s.orphan_grace_seconds)
    with db.connect() as conn:

        def pending(ids: list[UUID]) -> set[UUID]:
            rows = conn.execute(SQL["pending_ids"], {"ids": ids}).fetchall()
            return {r["id"] for r in rows}

        stale = [
            (k, _upload_id(k))
            for k, _, modified in storage.list_keys(s.uploads_bucket, "incoming/")
            if modified < cutoff
        ]
        live = pending([i for _, i in stale if i])
        for key, upload_id in stale:
            if upload_id not in live:
                storage.delete(s.uploads_bucket, key)
                report.orphans_deleted += 1

        stray = [
            (k, m, _upload_id(k))
            for k, m, started in storage.list_multipart_uploads(s.uploads_bucket, "incoming/")
            if started < cutoff
        ]
        live = pending([i for _, _, i in stray if i])
        for key, multipart_id, upload_id in stray:
            if upload_id not in live:
                storage.abort_multipart(s.uploads_bucket, key, multipart_id)
                report.aborted += 1

        blobs = [
            k for k, _, modified in storage.list_keys(s.data_bucket, "blobs/") if modified < cutoff
        ]
        for start in range(0, len(blobs), 1000):
            batch = blobs[start : start + 1000]
            known = {
                r["object_key"] for r in conn.execute(SQL["referenced_blob_keys"], {"keys": batch})
            }
            for key in batch:
                if key not in known:
                    storage.delete(s.data_bucket, key)
                    report.orphans_deleted += 1


def run() -> Report:
    report = Report()
    check_pending(report)
    delete_orphans(report)
    report.signalled = sorted(jobs.due_types())
    jobs.signal(report.signalled)
    log.info("sweep done", extra={"report": report.__dict__})
    return report
