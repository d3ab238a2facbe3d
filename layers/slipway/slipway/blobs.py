"""Content-addressed blobs: an upload's bytes kept once under their own SHA-256
(`storage.blob_key`), shared by every upload of the same bytes.

What keeps a key from ever naming other bytes:
- a blob is written only by verification, from the one immutable version of the incoming
  object that it hashed, write-once (`If-None-Match: *`), and S3's own SHA-256 of the copy
  must equal the one verification computed;
- deduplication trusts only blobs recorded in the `blobs` table (recorded in the
  transaction that marks the first such upload ready), never an object that merely exists;
  an unrecorded object at a blob key is kept only if its stored checksum matches the key;
- the sweeper deletes an unrecorded blob only under the content lock that recording takes,
  and verification checks the blob is still there once it is recorded (`ensure`);
- `audit` re-hashes blobs from their stored bytes (`slipway verify --blobs`, and a sample
  in the hourly check).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from psycopg.rows import DictRow

from slipway import db, digests, queries, storage
from slipway.config import settings
from slipway.digests import Digests

log = logging.getLogger(__name__)
SQL = queries.load("blobs")
PREFIX = "blobs/sha256/"


@dataclass(frozen=True)
class Source:
    """One version of an object: the bytes that were hashed."""

    bucket: str
    key: str
    version_id: str | None


class BlobMismatch(RuntimeError):
    """S3's checksum of a copy differs from the digest of its source: keep nothing."""


def lock(conn: db.Connection, sha256: bytes) -> None:
    """The content lock (transaction-scoped) on one digest."""
    conn.execute(SQL["lock_content"], {"key": int.from_bytes(sha256[:8], "big", signed=True)})


def recorded(conn: db.Connection, sha256: bytes) -> bool:
    return conn.execute(SQL["get"], {"sha256": sha256}).fetchone() is not None


def recorded_keys(conn: db.Connection, keys: list[str]) -> set[str]:
    return {r["object_key"] for r in conn.execute(SQL["recorded_keys"], {"keys": keys})}


def digest_of_key(key: str) -> bytes | None:
    """The SHA-256 a blob key names, or None for a key that is not a blob key."""
    name = key.removeprefix(PREFIX)
    try:
        sha256 = digests.parse_hex_digest(name.rsplit("/", 1)[-1])
    except ValueError:
        return None
    return sha256 if storage.blob_key(sha256) == key else None


def store(source: Source, found: Digests) -> None:
    """Copy the hashed version to its blob key, unless a blob with these bytes is there."""
    bucket, key = settings().data_bucket, storage.blob_key(found.sha256)
    want = storage.b64(found.sha256)
    copy = (source.bucket, source.key, bucket, key, found.size)
    try:
        got = storage.copy(*copy, version_id=source.version_id, write_once=True)
    except storage.AlreadyExists:
        if storage.stored_sha256(bucket, key) == want:
            return  # these very bytes (another verification of them, or an earlier try)
        log.warning("blob key held other or unchecked bytes; replacing", extra={"key": key})
        got = storage.copy(*copy, version_id=source.version_id)
    if got is not None and got != want:
        storage.delete(bucket, key)
        raise BlobMismatch(f"S3 hashed the copy at {key} as {got}, expected {want}")


def ensure(source: Source, found: Digests) -> None:
    """After recording: put the blob back if an orphan sweep removed it meanwhile."""
    if storage.head(settings().data_bucket, storage.blob_key(found.sha256)) is None:
        log.warning("recorded blob was missing; stored again", extra={"sha256": found.sha256.hex()})
        store(source, found)


def delete_if_unrecorded(key: str, older_than: datetime) -> bool:
    """The sweeper's delete: only an unrecorded blob, last written before `older_than`,
    checked under the content lock (so never one that verification is recording)."""
    bucket = settings().data_bucket
    sha256 = digest_of_key(key)
    with db.transaction() as conn:
        if sha256 is not None:
            lock(conn, sha256)
            if recorded(conn, sha256):
                return False
        info = storage.head(bucket, key)
        if info is None or info.modified is None or info.modified >= older_than:
            return False
        storage.delete(bucket, key)
    return True


# audit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    key: str
    problem: str


@dataclass
class AuditReport:
    checked: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)


def _rows(sample: int | None) -> Iterator[DictRow]:
    """Every recorded blob in digest order, or `sample` of them from a random digest on."""
    after, remaining = (os.urandom(32), sample) if sample else (b"", None)
    wrapped = False
    while remaining is None or remaining > 0:
        limit = min(500, remaining) if remaining is not None else 500
        with db.connect() as conn:
            rows = conn.execute(SQL["page"], {"after": after, "limit": limit}).fetchall()
        if not rows:
            if sample and not wrapped and after:
                after, wrapped = b"", True  # went past the last digest: go round once
                continue
            return
        yield from rows
        after = bytes(rows[-1]["sha256"])
        if remaining is not None:
            remaining -= len(rows)


def audit(sample: int | None = None) -> AuditReport:
    """Re-hash recorded blobs from their stored bytes; name every one that does not match
    its key and row (or is missing)."""
    bucket = settings().data_bucket
    report = AuditReport()
    for row in _rows(sample):
        sha256 = bytes(row["sha256"])
        key = storage.blob_key(sha256)
        report.checked += 1
        if row["object_key"] != key:
            report.problems.append(Problem(row["object_key"], f"recorded at the wrong key {key}"))
        if storage.head(bucket, key) is None:
            report.problems.append(Problem(key, "missing"))
            continue
        found = digests.of_chunks(storage.iter_chunks(bucket, key))
        report.bytes += found.size
        if found.sha256 != sha256:
            report.problems.append(Problem(key, f"holds bytes with sha256 {found.sha256.hex()}"))
        elif found.blake3 != bytes(row["blake3"]) or found.size != row["size"]:
            report.problems.append(Problem(key, "BLAKE3 or size differs from its record"))
    return report
