"""Uploads: the DB-first state machine `pending → ready | failed`.

`create` records the upload before any URL exists; the client then PUTs straight to
object storage. `verify` (driven by the bucket notification, the HTTP complete call or the
sweeper, in any order and any number of times) hashes the stored bytes, stores them
content-addressed and marks the upload ready in one transaction with its follow-up jobs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus
from uuid import UUID, uuid4

import boto3
import cbor2

from slipway import blobs, db, digests, errors, jobs, logs, metrics, queries, storage, tracing
from slipway import upload_rules as rules
from slipway.config import MiB, settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent, rfc3339
from slipway.projections import record
from slipway.telemetry import sessions

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
SQL = queries.load("uploads")


@dataclass(frozen=True)
class NewUpload:
    kind: str
    filename: str
    size: int
    content_type: str = "application/octet-stream"
    sha256: str | None = None
    checksum_parts: bool = False


@dataclass(frozen=True)
class Upload:
    id: UUID
    owner: str
    kind: str
    filename: str
    content_type: str
    size: int
    declared_sha256: bytes | None
    method: str
    object_key: str
    multipart_id: str | None
    part_size: int | None
    part_count: int | None
    checksum_parts: bool
    expires_at: datetime
    state: str
    sha256: bytes | None
    blake3: bytes | None
    deduplicated: bool
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Upload:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def blob_key(self) -> str:
        """Where a ready upload's bytes are kept (content-addressed)."""
        if self.sha256 is None:
            raise SlipwayError(Code.UPLOAD_NOT_READY, f"the upload is {self.state}")
        return storage.blob_key(bytes(self.sha256))

    @property
    def parts(self) -> tuple[str, int, int]:
        """(multipart id, part size, part count) of a multipart upload."""
        if not (self.multipart_id and self.part_size and self.part_count):
            raise errors.conflict(Code.NOT_MULTIPART, "this upload is a single PUT, not multipart")
        return self.multipart_id, self.part_size, self.part_count

    def to_api(self, upload_jobs: Sequence[jobs.Job] = ()) -> dict[str, Any]:
        def hex_or_none(value: bytes | None) -> str | None:
            return bytes(value).hex() if value else None

        return {
            "uploadId": str(self.id),
            "kind": self.kind,
            "filename": self.filename,
            "contentType": self.content_type,
            "size": self.size,
            "state": self.state,
            "method": self.method,
            "partSize": self.part_size,
            "partCount": self.part_count,
            "sha256": hex_or_none(self.sha256),
            "blake3": hex_or_none(self.blake3),
            "declaredSha256": hex_or_none(self.declared_sha256),
            "deduplicated": self.deduplicated,
            "error": {"code": self.error_code, "message": self.error_message}
            if self.state == "failed"
            else None,
            "jobs": [{"jobId": str(j.id), "type": j.type, "status": j.status} for j in upload_jobs],
            "expiresAt": rfc3339(self.expires_at) if self.state == "pending" else None,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        }


# validation --------------------------------------------------------------------------


def _invalid(message: str) -> SlipwayError:
    return errors.bad_request(message)


def validate(new: NewUpload) -> bytes | None:
    """Raise a 400 for anything wrong with the request; returns the declared digest."""
    if new.kind not in rules.KINDS:
        raise _invalid(f"kind must be one of {', '.join(rules.KINDS)}")
    name = new.filename
    if not name or len(name.encode()) > 255:
        raise _invalid("filename must be 1 to 255 bytes")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise _invalid("filename must be a bare name, without path parts")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in name):
        raise _invalid("filename must not contain control characters")
    limit = settings().max_upload_size
    if not 1 <= new.size <= limit:
        raise _invalid(f"size must be between 1 and {limit} bytes")
    if not rules.CONTENT_TYPE.fullmatch(new.content_type) or len(new.content_type) > 255:
        raise _invalid("contentType must be a media type such as application/octet-stream")
    if new.sha256 is None:
        return None
    try:
        return digests.parse_hex_digest(new.sha256)
    except ValueError as exc:
        raise _invalid("sha256 must be 64 hexadecimal digits") from exc


def part_size_for(size: int) -> int:
    """The configured part size, raised (in whole MiB) until the file fits 10,000 parts."""
    needed = math.ceil(size / rules.S3_MAX_PARTS / MiB) * MiB
    return max(settings().part_size, needed, rules.S3_MIN_PART)


def part_length(upload: Upload, number: int) -> int:
    _, part_size, _ = upload.parts
    return min(part_size, upload.size - (number - 1) * part_size)


# reading -----------------------------------------------------------------------------


def load(upload_id: UUID, owner: str | None = None) -> Upload:
    with db.connect() as conn:
        row = conn.execute(SQL["get"], {"id": upload_id}).fetchone()
    if row is None or (owner is not None and row["owner"] != owner):
        raise errors.not_found("upload")
    return Upload.from_row(row)


def ready_for(upload_id: UUID | None, what: str) -> Upload:
    """The settled upload a job works on (its bytes are in the data bucket)."""
    if upload_id is None:
        raise errors.bad_request(f"a {what} job needs an upload")
    upload = load(upload_id)
    if upload.state != "ready" or upload.sha256 is None:
        raise SlipwayError(Code.UPLOAD_NOT_READY, f"the upload is {upload.state}")
    return upload


def view(upload_id: UUID, owner: str) -> dict[str, Any]:
    upload = load(upload_id, owner)
    with db.connect() as conn:
        return upload.to_api(jobs.for_upload(conn, upload_id))


# create (presign) --------------------------------------------------------------------


def _url_expiry() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=settings().url_ttl_seconds)


def create(owner: str, new: NewUpload) -> dict[str, Any]:
    """Record the upload (pending), then sign where its bytes go."""
    declared = validate(new)
    s = settings()
    upload_id = uuid4()
    key = storage.incoming_key(upload_id)
    multipart = new.size > s.multipart_threshold
    part_size = part_size_for(new.size) if multipart else None
    part_count = math.ceil(new.size / part_size) if part_size else None
    multipart_id = None
    if multipart:  # an orphan here (if the insert below fails) is aborted by the sweeper
        multipart_id = storage.create_multipart(
            s.uploads_bucket, key, content_type=new.content_type, checksums=new.checksum_parts
        )
    lifetime = s.multipart_ttl_seconds if multipart else s.url_ttl_seconds
    with db.transaction() as conn:
        record(
            conn,
            f"user:{owner}",
            NewEvent(
                "v1.upload.created",
                "upload",
                upload_id,
                {
                    "owner": owner,
                    "kind": new.kind,
                    "filename": new.filename,
                    "contentType": new.content_type,
                    "size": new.size,
                    "sha256": declared.hex() if declared else None,
                    "method": "MULTIPART" if multipart else "PUT",
                    "objectKey": key,
                    "multipartId": multipart_id,
                    "partSize": part_size,
                    "partCount": part_count,
                    "checksumParts": new.checksum_parts and multipart,
                    "expiresAt": rfc3339(datetime.now(UTC) + timedelta(seconds=lifetime)),
                    **logs.correlation(),  # what the upload causes logs under it (logs.py)
                },
            ),
        )
    metrics.upload_created(new.kind)
    tracing.annotate(upload_id=str(upload_id))
    body: dict[str, Any] = {
        "uploadId": str(upload_id),
        "state": "pending",
        "expiresAt": rfc3339(_url_expiry()),
    }
    if not multipart:
        signed = storage.presign_put(
            s.uploads_bucket,
            key,
            content_type=new.content_type,
            size=new.size,
            sha256=declared,
            ttl=s.url_ttl_seconds,
        )
        return body | {"method": "PUT", "url": signed.url, "headers": signed.headers}
    upload = load(upload_id)
    first = [] if new.checksum_parts else list(range(1, min(part_count or 0, s.part_url_batch) + 1))
    return body | {
        "method": "MULTIPART",
        "partSize": part_size,
        "partCount": part_count,
        "checksumParts": new.checksum_parts,
        "resumableUntil": rfc3339(upload.expires_at),
        "parts": _sign_parts(upload, [(n, None) for n in first]),
    }


# multipart: parts and complete ---------------------------------------------------------


def _multipart_pending(upload_id: UUID, owner: str) -> Upload:
    upload = load(upload_id, owner)
    if upload.method != "MULTIPART":
        raise errors.conflict(Code.NOT_MULTIPART, "this upload is a single PUT, not multipart")
    if upload.state != "pending":
        raise errors.conflict(Code.CONFLICT, f"the upload is already {upload.state}")
    return upload


def _sign_parts(upload: Upload, wanted: Sequence[tuple[int, bytes | None]]) -> list[dict[str, Any]]:
    s = settings()
    multipart_id, _, _ = upload.parts
    signed = []
    for number, sha256 in wanted:
        req = storage.presign_part(
            s.uploads_bucket,
            upload.object_key,
            multipart_id,
            number,
            size=part_length(upload, number),
            sha256=sha256,
            ttl=s.url_ttl_seconds,
        )
        signed.append({"partNumber": number, "url": req.url, "headers": req.headers})
    return signed


def sign_parts(
    upload_id: UUID, owner: str, wanted: Sequence[tuple[int, str | None]]
) -> dict[str, Any]:
    """Fresh URLs for the wanted parts (default: the next batch not yet uploaded), and the
    parts S3 already holds, so an interrupted client can resume."""
    upload = _multipart_pending(upload_id, owner)
    multipart_id, part_size, part_count = upload.parts
    held = storage.list_parts(settings().uploads_bucket, upload.object_key, multipart_id)
    if not wanted and not upload.checksum_parts:
        have = {p.number for p in held}
        missing = [n for n in range(1, part_count + 1) if n not in have]
        wanted = [(n, None) for n in missing[: settings().part_url_batch]]
    if len(wanted) > 1000:
        raise _invalid("ask for at most 1000 parts at a time")
    parsed: list[tuple[int, bytes | None]] = []
    for number, sha_hex in wanted:
        if not 1 <= number <= part_count:
            raise _invalid(f"partNumber must be between 1 and {part_count}")
        try:
            sha = digests.parse_hex_digest(sha_hex) if sha_hex else None
        except ValueError as exc:
            raise _invalid("a part's sha256 must be 64 hexadecimal digits") from exc
        if upload.checksum_parts and sha is None:
            raise _invalid("this upload signs per-part checksums: give each part's sha256")
        parsed.append((number, sha))
    return {
        "uploadId": str(upload_id),
        "partSize": part_size,
        "partCount": part_count,
        "expiresAt": rfc3339(_url_expiry()),
        "parts": _sign_parts(upload, parsed),
        "uploaded": [{"partNumber": p.number, "etag": p.etag, "size": p.size} for p in held],
    }


def _strip(etag: str) -> str:
    return etag.strip().strip('"')


def _complete_multipart(upload: Upload, claimed: Sequence[tuple[int, str]] | None) -> None:
    s = settings()
    multipart_id, _, part_count = upload.parts
    held = {
        p.number: p for p in storage.list_parts(s.uploads_bucket, upload.object_key, multipart_id)
    }
    if not held:  # completed already (a repeated call), or nothing uploaded yet
        if storage.head(s.uploads_bucket, upload.object_key) is None:
            raise errors.conflict(Code.NOT_UPLOADED, "no part of this upload has arrived yet")
        return
    expected = list(range(1, part_count + 1))
    missing = [n for n in expected if n not in held]
    if missing:
        raise errors.conflict(
            Code.NOT_UPLOADED, f"{len(missing)} part(s) missing, first {missing[0]}"
        )
    if claimed is not None:
        if sorted(n for n, _ in claimed) != expected:
            raise errors.SlipwayError(
                Code.PART_MISMATCH, f"list every part 1..{part_count} exactly once"
            )
        wrong = [n for n, etag in claimed if _strip(etag) != _strip(held[n].etag)]
        if wrong:
            raise errors.SlipwayError(
                Code.PART_MISMATCH, f"part {wrong[0]}: ETag differs from the stored part"
            )
    for n in expected:
        if held[n].size != part_length(upload, n):
            raise errors.SlipwayError(
                Code.SIZE_MISMATCH,
                f"part {n} holds {held[n].size} bytes, "
                f"expected {part_length(upload, n)}; upload it again",
            )
    storage.complete_multipart(
        s.uploads_bucket, upload.object_key, multipart_id, [held[n] for n in expected]
    )


def complete(
    upload_id: UUID, owner: str, parts: Sequence[tuple[int, str]] | None = None
) -> dict[str, Any]:
    """The client says its bytes are there. Completes a multipart upload, then asks for
    verification (asynchronous: hashing 20 GiB outlasts any HTTP request)."""
    upload = load(upload_id, owner)
    if upload.state == "pending":
        try:
            if upload.method == "MULTIPART":
                _complete_multipart(upload, parts)
            elif storage.head(settings().uploads_bucket, upload.object_key) is None:
                raise errors.conflict(Code.NOT_UPLOADED, "nothing has been uploaded to the URL yet")
        except SlipwayError as exc:
            # the notification may have settled it (and removed the object) meanwhile
            if exc.code != Code.NOT_UPLOADED or load(upload_id).state == "pending":
                raise
        else:
            request_verification(upload_id)
    return view(upload_id, owner)


# verify (upload-complete) --------------------------------------------------------------


@cache
def _sqs() -> SQSClient:
    client: SQSClient = boto3.client("sqs")
    return client


def request_verification(upload_id: UUID) -> None:
    """Queue a verification beside the bucket's notifications (same consumer)."""
    url = settings().upload_events_queue_url
    if url is None:
        verify(upload_id, "fn:upload_complete")
        return
    _sqs().send_message(QueueUrl=url, MessageBody=json.dumps({"verifyUpload": str(upload_id)}))


def upload_id_from_key(bucket: str, key: str) -> UUID | None:
    if bucket != settings().uploads_bucket or not key.startswith("incoming/"):
        return None
    try:
        return UUID(key.removeprefix("incoming/"))
    except ValueError:
        return None


VERIFY_LEASE_SECONDS = 120  # renewed while hashing; a verifier that dies loses it


class LeaseLost(RuntimeError):
    """Another verifier took over this upload (ours expired): stop, settle nothing."""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4()}"


@contextmanager
def _verification_lease(upload_id: UUID) -> Iterator[Callable[[], None] | None]:
    """A lease on verifying one upload (a row in upload_checks, never a session lock: a
    frozen or killed verifier's lease simply expires). Yields `renew`, or None when
    another verifier holds a live lease."""
    holder = _holder()
    params = {"id": upload_id, "holder": holder, "lease": VERIFY_LEASE_SECONDS}

    def claim() -> bool:
        with db.connect() as conn:
            return conn.execute(SQL["claim_verification"], params).fetchone() is not None

    def renew() -> None:
        if not claim():
            raise LeaseLost(f"verification of {upload_id} was taken over")

    if not claim():
        yield None
        return
    try:
        yield renew
    finally:
        with db.connect() as conn:
            conn.execute(SQL["release_verification"], params)


def _renewing(chunks: Iterable[bytes], renew: Callable[[], None]) -> Iterator[bytes]:
    last = time.monotonic()
    for chunk in chunks:
        if time.monotonic() - last > VERIFY_LEASE_SECONDS / 4:
            renew()
            last = time.monotonic()
        yield chunk


def _fail(upload: Upload, code: Code, message: str, actor: str) -> None:
    with db.transaction() as conn:
        current = conn.execute(SQL["lock"], {"id": upload.id}).fetchone()
        if current is None or current["state"] != "pending":
            return
        record(
            conn,
            actor,
            NewEvent(
                "v1.upload.failed", "upload", upload.id, {"code": code.value, "message": message}
            ),
        )
    metrics.upload_failed(upload.kind, code.value)
    log.info("upload failed", extra={"upload_id": str(upload.id), "code": code.value})


def fail(upload_id: UUID, code: Code, message: str, actor: str) -> None:
    _fail(load(upload_id), code, message, actor)


def _follow_ups(upload: Upload) -> tuple[list[NewEvent], list[str]]:
    if upload.kind == "slide":
        return [jobs.queued("tile", upload.owner, upload.id, {})], ["tile"]
    return sessions.finalise_events(upload.owner, upload.id), [sessions.PARSE]


def _discard_incoming(upload: Upload) -> None:
    """Delete every version of the upload's incoming object (the hashed one, and any
    later PUT to a still-valid URL: such bytes are never kept)."""
    storage.delete_versions(settings().uploads_bucket, upload.object_key)


def _created_under(upload_id: UUID) -> str | None:
    """The correlation id of the request that created the upload (`v1.upload.created`)."""
    with db.connect() as conn:
        row = conn.execute(SQL["created_event"], {"id": upload_id}).fetchone()
    value = cbor2.loads(bytes(row["payload"])).get("correlationId") if row else None
    return str(value) if value else None


def verify(upload_id: UUID, actor: str) -> Upload | None:
    """Check the stored bytes against the record and settle the upload. Safe to repeat,
    to race with itself and to run before or after the client's complete call.

    It hashes one version of the incoming object and copies exactly that version, so
    whatever is written to the URL meanwhile, the blob holds the hashed bytes."""
    try:
        upload = load(upload_id)
    except SlipwayError as exc:
        if exc.code != Code.NOT_FOUND:
            raise  # e.g. the database is unavailable: the message must come back
        log.info("notification for an unknown upload ignored", extra={"upload_id": str(upload_id)})
        return None
    s = settings()
    if upload.state != "pending":
        _discard_incoming(upload)  # a late or repeated PUT
        return upload
    tracing.annotate(upload_id=str(upload_id))
    logs.adopt(lambda: _created_under(upload_id))  # a notification: the upload's request id
    with _verification_lease(upload_id) as renew:
        if renew is None:
            return None  # another verifier is on it (the sweeper retries after its lease)
        started = time.monotonic()
        info = storage.head(s.uploads_bucket, upload.object_key)
        if info is None:
            return upload  # nothing there yet (e.g. multipart not completed)
        if info.size != upload.size:
            message = f"stored {info.size} bytes, declared {upload.size}"
            _fail(upload, Code.SIZE_MISMATCH, message, actor)
            _discard_incoming(upload)
            return load(upload_id)
        source = blobs.Source(s.uploads_bucket, upload.object_key, info.version_id)
        chunks = storage.iter_chunks(source.bucket, source.key, version_id=source.version_id)
        found = digests.of_chunks(_renewing(chunks, renew))
        declared = upload.declared_sha256
        if found.size != upload.size or (declared and bytes(declared) != found.sha256):
            what = "content" if found.size == upload.size else "size"
            _fail(
                upload,
                Code.CHECKSUM_MISMATCH if what == "content" else Code.SIZE_MISMATCH,
                f"the stored {what} does not match the declaration (sha256 {found.sha256.hex()})",
                actor,
            )
            _discard_incoming(upload)
            return load(upload_id)
        with db.connect() as conn:
            known = blobs.recorded(conn, found.sha256)
        if not known:
            blobs.store(source, found)
        renew()
        with db.transaction() as conn:
            row = conn.execute(SQL["lock"], {"id": upload_id}).fetchone()
            if row is None or row["state"] != "pending":
                return Upload.from_row(row) if row else None
            blobs.lock(conn, found.sha256)
            follow, job_types = _follow_ups(Upload.from_row(row))
            record(
                conn,
                actor,
                NewEvent(
                    "v1.upload.ready",
                    "upload",
                    upload_id,
                    {
                        "sha256": found.sha256.hex(),
                        "blake3": found.blake3.hex(),
                        "size": found.size,
                        "objectKey": storage.blob_key(found.sha256),
                        "deduplicated": blobs.recorded(conn, found.sha256),
                    },
                ),
                *follow,
            )
        blobs.ensure(source, found)
    _discard_incoming(upload)
    jobs.signal(job_types)
    log.info("upload ready", extra={"upload_id": str(upload_id), "sha256": found.sha256.hex()})
    metrics.upload_ready(upload.kind, found.size, time.monotonic() - started)
    return load(upload_id)


def on_notification(body: Mapping[str, Any], actor: str) -> int:
    """One message of the upload-events queue: an S3 event (ObjectCreated), S3's test
    event, or a verification request. Returns how many uploads it settled."""
    if "verifyUpload" in body:
        verify(UUID(str(body["verifyUpload"])), actor)
        return 1
    if body.get("Event") == "s3:TestEvent":
        return 0
    settled = 0
    for rec in body.get("Records", []):
        if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = rec["s3"]
        key = unquote_plus(s3["object"]["key"])  # S3 event keys are URL-encoded
        upload_id = upload_id_from_key(s3["bucket"]["name"], key)
        if upload_id is None:
            log.info("notification for a key outside incoming/ ignored", extra={"key": key})
            continue
        verify(upload_id, actor)
        settled += 1
    return settled
