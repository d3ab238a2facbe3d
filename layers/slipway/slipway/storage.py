"""Object storage (S3 or any S3-compatible server): key layout, pre-signed URLs, multipart,
streaming reads and content-addressed copies.

The endpoint comes from botocore's own `AWS_ENDPOINT_URL` variable; against a local
server we sign with SigV4 and use path-style addresses (no DNS for bucket hostnames).
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.utils import determine_content_length

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

MiB = 1024 * 1024
SINGLE_COPY_LIMIT = 5 * 1024 * MiB  # CopyObject's limit; larger objects copy in parts
# Bodies below this go without `Expect: 100-continue` (the AWS SDK for Go's threshold)
EXPECT_CONTINUE_FROM = 2 * MiB


# key layout: object keys never contain user-supplied names ---------------------------


def incoming_key(upload_id: UUID) -> str:
    return f"incoming/{upload_id}"


def blob_key(sha256: bytes) -> str:
    h = sha256.hex()
    return f"blobs/sha256/{h[:2]}/{h[2:4]}/{h}"


def slide_prefix(upload_id: UUID) -> str:
    return f"slides/{upload_id}/"


def stream_key(session_id: UUID, stream: str) -> str:
    return f"telemetry/{session_id}/{stream}.parquet"


def line_scan_tile_key(scan_id: UUID, tile_id: UUID) -> str:
    return f"line-scans/{scan_id}/{tile_id}"


def line_scan_object_key(scan_id: UUID, tile_id: UUID, sha256: bytes) -> str:
    """One tile's bytes, named by their digest: a row's sha256 always names its own object,
    so two PUTs of one tile with different bytes never write the same key."""
    return f"line-scans/{scan_id}/{tile_id}/{sha256.hex()}"


# client ------------------------------------------------------------------------------


@cache
def client() -> S3Client:
    local = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if local else "auto"},
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=32,
    )
    s3 = boto3.client("s3", config=config)
    s3.meta.events.register("before-call.s3", _send_small_bodies_at_once)
    if local:
        s3.meta.events.register("before-call.s3", _keep_alive)
    return s3


def _keep_alive(params: dict[str, Any], **_: Any) -> None:
    """Against a local server only: LocalStack closes the connection after each answer
    unless the request asks to keep it (its localstack#6557 workaround), so every tile PUT
    would connect anew; AWS keeps connections open by default."""
    params["headers"]["Connection"] = "keep-alive"


def _send_small_bodies_at_once(params: dict[str, Any], **_: Any) -> None:
    """botocore makes every S3 PUT with a body wait for `100 Continue` first: a round trip
    more, which for a tile or a descriptor costs more than sending it. Below
    EXPECT_CONTINUE_FROM the body goes at once (the header is not signed)."""
    body = params.get("body")
    if "Expect" in params["headers"] and body is not None:
        length = determine_content_length(body)
        if length is not None and length < EXPECT_CONTINUE_FROM:
            del params["headers"]["Expect"]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class AlreadyExists(Exception):
    """A write-once write found its key taken."""


@dataclass(frozen=True)
class SignedRequest:
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    content_type: str
    version_id: str | None = None  # in a versioned bucket: names these bytes for good
    modified: datetime | None = None


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int
    sha256: str | None  # base64, when the multipart upload carries checksums


# pre-signed URLs ---------------------------------------------------------------------


def presign_put(
    bucket: str, key: str, *, content_type: str, size: int, sha256: bytes | None, ttl: int
) -> SignedRequest:
    """A PUT URL for one key; length (and checksum, if given) are signed, so S3 refuses
    any other body, and so is `If-None-Match: *`: the key is written once, a second PUT
    to the same URL is refused (412)."""
    params: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": content_type,
        "ContentLength": size,
        "IfNoneMatch": "*",
    }
    headers = {"Content-Type": content_type, "If-None-Match": "*"}
    if sha256 is not None:
        params["ChecksumSHA256"] = b64(sha256)
        headers["x-amz-checksum-sha256"] = b64(sha256)
    url = client().generate_presigned_url("put_object", Params=params, ExpiresIn=ttl)
    return SignedRequest(url, headers)


def presign_part(
    bucket: str,
    key: str,
    multipart_id: str,
    number: int,
    *,
    size: int,
    sha256: bytes | None,
    ttl: int,
) -> SignedRequest:
    params: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "UploadId": multipart_id,
        "PartNumber": number,
        "ContentLength": size,
    }
    headers: dict[str, str] = {}
    if sha256 is not None:
        params["ChecksumSHA256"] = b64(sha256)
        headers["x-amz-checksum-sha256"] = b64(sha256)
    url = client().generate_presigned_url("upload_part", Params=params, ExpiresIn=ttl)
    return SignedRequest(url, headers)


def presign_get(bucket: str, key: str, *, ttl: int, filename: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    return client().generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)


# multipart ---------------------------------------------------------------------------


def create_multipart(bucket: str, key: str, *, content_type: str, checksums: bool) -> str:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
    if checksums:
        params["ChecksumAlgorithm"] = "SHA256"
    return client().create_multipart_upload(**params)["UploadId"]


def list_parts(bucket: str, key: str, multipart_id: str) -> list[Part]:
    """Parts S3 holds for an unfinished multipart upload ([] once it is completed)."""
    parts: list[Part] = []
    marker = 0
    while True:
        try:
            page = client().list_parts(
                Bucket=bucket, Key=key, UploadId=multipart_id, PartNumberMarker=marker
            )
        except ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                return []
            raise
        parts += [
            Part(p["PartNumber"], p["ETag"], p["Size"], p.get("ChecksumSHA256"))
            for p in page.get("Parts", [])
        ]
        if not page.get("IsTruncated"):
            return parts
        marker = page["NextPartNumberMarker"]


def complete_multipart(bucket: str, key: str, multipart_id: str, parts: list[Part]) -> None:
    def entry(p: Part) -> CompletedPartTypeDef:
        done: CompletedPartTypeDef = {"PartNumber": p.number, "ETag": p.etag}
        if p.sha256:
            done["ChecksumSHA256"] = p.sha256
        return done

    client().complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=multipart_id,
        MultipartUpload={"Parts": [entry(p) for p in parts]},
    )


def upload_part(bucket: str, key: str, multipart_id: str, number: int, data: bytes) -> Part:
    reply = client().upload_part(
        Bucket=bucket, Key=key, UploadId=multipart_id, PartNumber=number, Body=data
    )
    return Part(number, reply["ETag"], len(data), None)


def abort_multipart(bucket: str, key: str, multipart_id: str) -> None:
    try:
        client().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=multipart_id)
    except ClientError as exc:
        if error_code(exc) != "NoSuchUpload":
            raise


class ObjectWriter:
    """A write-only stream into one object. Parts go up on threads as they fill (at most
    `parallel` in flight, so memory stays near parallel × part_size); `close` completes
    the upload, `abort` drops it. Below one part it is a single PUT. A failed part raises
    from the next `write` or from `close`. One writing thread."""

    def __init__(
        self,
        bucket: str,
        key: str,
        content_type: str,
        *,
        part_size: int = 16 * MiB,
        parallel: int = 4,
    ) -> None:
        self.bucket, self.key, self.content_type = bucket, key, content_type
        self.part_size = part_size
        self.size = 0
        self._pending = bytearray()
        self._parts: list[Future[Part]] = []
        self._slots = threading.Semaphore(parallel)
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="part")
        self._multipart: str | None = None
        self._error: BaseException | None = None

    def _done(self, part: Future[Part]) -> None:
        self._slots.release()
        if not part.cancelled() and part.exception() is not None:
            self._error = self._error or part.exception()

    def _send(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._multipart is None:
            self._multipart = create_multipart(
                self.bucket, self.key, content_type=self.content_type, checksums=False
            )
        self._slots.acquire()  # back-pressure: wait for a free upload slot
        number = len(self._parts) + 1
        part = self._pool.submit(upload_part, self.bucket, self.key, self._multipart, number, chunk)
        part.add_done_callback(self._done)
        self._parts.append(part)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        self.size += len(data)
        while len(self._pending) >= self.part_size:
            self._send(bytes(self._pending[: self.part_size]))
            del self._pending[: self.part_size]
        return len(data)

    def close(self) -> None:
        """Make the object visible, whole."""
        try:
            if self._multipart is None:
                put_bytes(self.bucket, self.key, bytes(self._pending), self.content_type)
            else:
                if self._pending:
                    self._send(bytes(self._pending))  # the last part may be small
                parts = [part.result() for part in self._parts]
                complete_multipart(self.bucket, self.key, self._multipart, parts)
        except BaseException:
            self.abort()
            raise
        self._pending.clear()
        self._pool.shutdown()

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._multipart is not None:
            abort_multipart(self.bucket, self.key, self._multipart)
            self._multipart = None


# objects -----------------------------------------------------------------------------


def head(bucket: str, key: str) -> ObjectInfo | None:
    try:
        r = client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    version = r.get("VersionId")
    return ObjectInfo(
        r["ContentLength"],
        r["ETag"],
        r.get("ContentType", ""),
        None if version in (None, "null") else version,
        r.get("LastModified"),
    )


def iter_chunks(
    bucket: str, key: str, chunk_size: int = 8 * MiB, *, version_id: str | None = None
) -> Iterator[bytes]:
    """The object's bytes (of one version, if given) as a stream of chunks (one GET,
    bounded memory)."""
    extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
    body = client().get_object(Bucket=bucket, Key=key, **extra)["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


class RangedReader:
    """A file-like view of an object through ranged GETs of `block` bytes: the next
    `ahead` blocks are fetched in parallel while the current one is read, and a small LRU
    of blocks serves seeks back (TIFF readers seek). Memory: (ahead + cached) blocks."""

    def __init__(
        self,
        bucket: str,
        key: str,
        size: int,
        *,
        block: int = 8 * MiB,
        ahead: int = 1,
        cached: int = 6,
    ) -> None:
        self.bucket, self.key, self.size = bucket, key, size
        self.block, self.ahead, self.cached = block, ahead, max(cached, ahead + 1)
        self.position = 0
        self.error: BaseException | None = None  # for callers that must swallow it first
        self._blocks: OrderedDict[int, Future[bytes]] = OrderedDict()
        self._fetcher = ThreadPoolExecutor(max(2, ahead + 1), thread_name_prefix="range")

    def _fetch(self, index: int) -> bytes:
        start = index * self.block
        end = min(start + self.block, self.size) - 1
        reply = client().get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}")
        return bytes(reply["Body"].read())

    def _get(self, index: int) -> Future[bytes]:
        if index not in self._blocks:
            self._blocks[index] = self._fetcher.submit(self._fetch, index)
        self._blocks.move_to_end(index)
        while len(self._blocks) > self.cached:
            self._blocks.popitem(last=False)
        return self._blocks[index]

    def read(self, length: int = -1) -> bytes:
        if length < 0:
            length = self.size - self.position
        if self.position >= self.size or length == 0:
            return b""
        index, offset = divmod(self.position, self.block)
        for later in range(index + 1, index + 1 + self.ahead):
            if later * self.block < self.size:
                self._get(later)
        data = self._get(index).result()[offset : offset + length]
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def close(self) -> None:
        self._fetcher.shutdown(wait=False, cancel_futures=True)


def read_bytes(bucket: str, key: str) -> bytes:
    return client().get_object(Bucket=bucket, Key=key)["Body"].read()


def read_range(bucket: str, key: str, offset: int, length: int) -> bytes:
    reply = client().get_object(
        Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
    )
    return reply["Body"].read()


def put_bytes(bucket: str, key: str, data: bytes, content_type: str) -> None:
    client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def upload_file(path: str, bucket: str, key: str, content_type: str) -> None:
    client().upload_file(path, bucket, key, ExtraArgs={"ContentType": content_type})


def copy(
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    size: int,
    *,
    version_id: str | None = None,
    write_once: bool = False,
) -> str | None:
    """Copy server-side (one version of the source, if given; with `write_once`, only if
    the destination does not exist: else ClientError PreconditionFailed). Returns the
    copy's SHA-256 as S3 computed it from the stored bytes (base64), for copies made in
    one request."""
    source: CopySourceTypeDef = {"Bucket": src_bucket, "Key": src_key}
    if version_id:
        source["VersionId"] = version_id
    if size <= SINGLE_COPY_LIMIT:
        once: dict[str, Any] = {"IfNoneMatch": "*"} if write_once else {}
        try:
            reply = client().copy_object(
                Bucket=dst_bucket,
                Key=dst_key,
                CopySource=source,
                ChecksumAlgorithm="SHA256",
                **once,
            )
        except ClientError as exc:
            if error_code(exc) == "PreconditionFailed":
                raise AlreadyExists(dst_key) from exc
            raise
        return reply.get("CopyObjectResult", {}).get("ChecksumSHA256")
    # Multipart copy, server-side part by part, each part from the same version. The
    # transfer manager cannot send If-None-Match, so write-once is a check first here.
    if write_once and head(dst_bucket, dst_key) is not None:
        raise AlreadyExists(dst_key)
    config = TransferConfig(multipart_threshold=SINGLE_COPY_LIMIT, multipart_chunksize=512 * MiB)
    client().copy(source, dst_bucket, dst_key, Config=config)
    return None


def stored_sha256(bucket: str, key: str) -> str | None:
    """The SHA-256 (base64) S3 recorded for an object written with that checksum."""
    try:
        reply = client().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return reply.get("ChecksumSHA256")


def delete(bucket: str, key: str) -> None:
    client().delete_object(Bucket=bucket, Key=key)


def delete_versions(bucket: str, key: str) -> int:
    """Delete every version (and delete marker) of exactly `key`; in an unversioned bucket
    that is the object itself. Returns how many went."""
    gone = 0
    paginator = client().get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if entry["Key"] == key:
                client().delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
                gone += 1
    return gone


def list_keys(bucket: str, prefix: str) -> Iterator[tuple[str, int, Any]]:
    """(key, size, last_modified) of every object under `prefix`."""
    paginator = client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"], obj["Size"], obj["LastModified"]


def list_versioned_keys(bucket: str, prefix: str) -> Iterator[tuple[str, Any]]:
    """(key, newest last_modified) of every key under `prefix` that has any version or
    delete marker left (a versioned bucket keeps bytes that a plain listing hides)."""
    newest: dict[str, Any] = {}
    paginator = client().get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            key, modified = entry["Key"], entry["LastModified"]
            newest[key] = max(modified, newest.get(key, modified))
    yield from newest.items()


def list_keys_after(
    bucket: str, prefix: str, start_after: str, limit: int
) -> list[tuple[str, Any]]:
    """Up to `limit` (key, last_modified) under `prefix` after `start_after`, in key order:
    one bounded page of a scan that resumes where the last one stopped."""
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
    if start_after:
        params["StartAfter"] = start_after
    reply = client().list_objects_v2(**params)
    return [(obj["Key"], obj["LastModified"]) for obj in reply.get("Contents", [])]


def list_multipart_uploads(bucket: str, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """(key, multipart id, initiated) of every unfinished multipart upload under `prefix`."""
    paginator = client().get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for up in page.get("Uploads", []):
            yield up["Key"], up["UploadId"], up["Initiated"]


def ping(buckets: list[str]) -> None:
    for bucket in buckets:
        client().head_bucket(Bucket=bucket)
