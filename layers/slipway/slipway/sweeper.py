"""Scheduled repairs: nothing is left to a notification or a signal alone.

- pending uploads whose bytes are in storage get a verification request (a lost
  notification), least recently checked first, so every one gets its turn;
- pending uploads past their deadline fail (`UPLOAD_EXPIRED` / `UPLOAD_ABANDONED`, and
  their multipart upload is aborted);
- objects nothing references (incoming leftovers, unrecorded blobs, stray multipart
  uploads) are deleted after a grace period; blobs are scanned a page per run;
- events a writer left in the log's inbox (it died between its commit and sequencing)
  are sequenced;
- due jobs are signalled again (a lost or failed wake-up);
- the queues are measured: due and running jobs and the oldest due job's wait per type
  (metrics QueueDepth, JobsRunning, OldestQueuedJobAge; what `slipway stats` prints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from slipway import blobs, db, events, jobs, metrics, queries, stats, storage, uploads
from slipway.config import settings
from slipway.errors import Code

log = logging.getLogger(__name__)
SQL = queries.load("uploads")
ACTOR = "fn:sweeper"


@dataclass
class Report:
    verifications_requested: int = 0
    expired: int = 0
    aborted: int = 0
    orphans_deleted: int = 0
    signalled: list[str] = field(default_factory=list)
    events_sequenced: int = 0


BLOB_SCAN_PAGE = 1000  # blob keys looked at per run; the scan resumes where it stopped


def check_pending(report: Report, limit: int = 200) -> None:
    """Pending uploads, least recently checked first: bytes there → a verification is
    requested (on the upload-events queue: the sweeper never hashes); past the deadline →
    failed."""
    s = settings()
    now = datetime.now(UTC)
    grace = timedelta(seconds=s.notification_grace_seconds)
    with db.transaction() as conn:
        conn.execute(SQL["settled_checks"])
        rows = conn.execute(
            SQL["pending_to_check"], {"min_age": s.notification_grace_seconds, "limit": limit}
        ).fetchall()
    for row in rows:
        upload = uploads.Upload.from_row(row)
        if storage.head(s.uploads_bucket, upload.object_key) is not None:
            uploads.request_verification(upload.id)
            report.verifications_requested += 1
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


def _pending(conn: db.Connection, ids: list[UUID]) -> set[UUID]:
    return {r["id"] for r in conn.execute(SQL["pending_ids"], {"ids": ids}).fetchall()}


def _delete_stale_incoming(report: Report, cutoff: datetime) -> None:
    """Incoming objects (every version) and multipart uploads of no pending upload."""
    s = settings()
    stale = [
        (k, _upload_id(k))
        for k, modified in storage.list_versioned_keys(s.uploads_bucket, "incoming/")
        if modified < cutoff
    ]
    stray = [
        (k, m, _upload_id(k))
        for k, m, started in storage.list_multipart_uploads(s.uploads_bucket, "incoming/")
        if started < cutoff
    ]
    with db.connect() as conn:
        live = _pending(conn, [i for _, i in stale if i] + [i for _, _, i in stray if i])
    for key, upload_id in stale:
        if upload_id not in live:
            report.orphans_deleted += storage.delete_versions(s.uploads_bucket, key)
    for key, multipart_id, upload_id in stray:
        if upload_id not in live:
            storage.abort_multipart(s.uploads_bucket, key, multipart_id)
            report.aborted += 1


def _delete_unrecorded_blobs(report: Report, cutoff: datetime) -> None:
    """One page of the blob scan: unrecorded blobs older than the grace period go (each
    under its content lock, see blobs.delete_if_unrecorded). The next run goes on from
    where this one stopped, and starts over after the last key."""
    s = settings()
    with db.connect() as conn:
        row = conn.execute(SQL["sweeper_state"], {"name": "blob_scan_after"}).fetchone()
        after = row["value"] if row else ""
        page = storage.list_keys_after(s.data_bucket, blobs.PREFIX, after, BLOB_SCAN_PAGE)
        keys = [k for k, modified in page if modified < cutoff]
        known = blobs.recorded_keys(conn, keys)
        for key in keys:
            if key not in known and blobs.delete_if_unrecorded(key, cutoff):
                report.orphans_deleted += 1
        position = page[-1][0] if len(page) == BLOB_SCAN_PAGE else ""
        conn.execute(SQL["set_sweeper_state"], {"name": "blob_scan_after", "value": position})


def delete_orphans(report: Report) -> None:
    cutoff = datetime.now(UTC) - timedelta(seconds=settings().orphan_grace_seconds)
    _delete_stale_incoming(report, cutoff)
    _delete_unrecorded_blobs(report, cutoff)


def measure_queues() -> None:
    """The queue's figures as metrics, every job type (zero when it has no job)."""
    with db.connect() as conn:
        rows = {r["type"]: r for r in conn.execute(stats.SQL["queues"]).fetchall()}
    now = datetime.now(UTC)
    for job_type in sorted(set(settings().job_queue_urls) | set(rows)):
        row = rows.get(job_type) or {"due": 0, "running": 0, "oldest_due_since": None}
        since = row["oldest_due_since"]
        age = max((now - since).total_seconds(), 0.0) if since else 0.0
        metrics.queue(job_type, row["due"], age, row["running"])


def run() -> Report:
    report = Report()
    with db.connect() as conn:  # events a writer left in the inbox (it died after commit)
        report.events_sequenced = events.sequence(conn)
    check_pending(report)
    delete_orphans(report)
    report.signalled = sorted(jobs.due_types())
    jobs.signal(report.signalled)
    measure_queues()
    log.info("sweep done", extra={"report": report.__dict__})
    return report
