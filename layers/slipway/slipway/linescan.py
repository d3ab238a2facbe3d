"""Line-scan tiles (seed adr-line-scan-tile-upload): DB-first `pending → ready | failed`.

The row says `pending` (attempt counted) before the bytes go to storage, `ready` after;
a storage error leaves `failed` with a short, stable `lastError` and answers 503.
Repeating the PUT is safe and converges to `ready`; reads serve bytes only from `ready`
tiles. docs/uploads.md ("Line-scan tiles") explains the races settled here.

- A scan belongs to the owner whose first PUT created it: creating a scan (or a tile row)
  takes a transaction-scoped advisory lock on its id, so a concurrent first PUT waits,
  then finds the row and its owner.
- A tile's bytes are stored under a key named by their SHA-256, so a row's `sha256` always
  names its own object; the first `ready` wins under the tile's row lock, and a PUT whose
  different bytes lost answers 409 and removes its object.
- Tiles too large for an inline body (Lambda's 6 MB payload limit, base64 included) go
  straight to storage: `sign_upload` records the attempt and returns a pre-signed PUT
  with length and SHA-256 signed, `complete_upload` hashes the stored bytes before `ready`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID

from slipway import db, errors, queries, storage
from slipway.config import MiB, settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent, rfc3339
from slipway.projections import DbStore, record
from slipway.projections.store import Row

log = logging.getLogger(__name__)
SQL = queries.load("linescan")
MAX_TILE_BYTES = 5 * MiB
# Above this a tile goes through `sign_upload`: 4 MiB is 5.6 MB once base64-encoded, under
# Lambda's 6 MB request limit with room for the rest of the event.
INLINE_LIMIT = 4 * MiB
STORED_TYPE = "application/octet-stream"
# lastError texts: stable and short (the exception, endpoints and all, goes to the log)
STORAGE_UNAVAILABLE = "storage unavailable"
STORED_BYTES_DIFFER = "the stored bytes do not match the declared sha256"


def _tile_api(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tileId": str(row["tile_id"]),
        "state": row["state"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "lastAttemptAt": rfc3339(row["last_attempt_at"]),
        "sha256": bytes(row["sha256"]).hex() if row["sha256"] else None,
        "size": row["size"],
    }


def _projected(store: DbStore, scan_id: UUID, tile_id: UUID) -> dict[str, Any]:
    """The tile as this transaction's events left it (the store holds the row it wrote)."""
    row = store.get("line_scan_tiles", scan_id, tile_id)
    assert row is not None, "read inside the transaction that wrote it"
    return _tile_api(row)


def check_media_type(content_type: str | None) -> None:
    """A tile body is `application/octet-stream` or `image/*` (none given: octet-stream)."""
    media = (content_type or STORED_TYPE).split(";", 1)[0].strip().lower()
    if media == STORED_TYPE or (media.startswith("image/") and len(media) > len("image/")):
        return
    raise SlipwayError(
        Code.UNSUPPORTED_MEDIA_TYPE,
        "a tile body is application/octet-stream or image/*",
        status=415,
    )


def _check_size(size: int) -> None:
    if size <= 0:
        raise errors.bad_request("the tile body is empty")
    if size > MAX_TILE_BYTES:
        raise SlipwayError(Code.PAYLOAD_TOO_LARGE, "a tile is at most 5 MiB", status=413)


def _own_scan(conn: db.Connection, scan_id: UUID, owner: str) -> Mapping[str, Any] | None:
    scan = conn.execute(SQL["get_scan"], {"id": scan_id}).fetchone()
    if scan is not None and scan["owner"] != owner:
        raise errors.not_found("line scan")
    return scan


def _claim_scan(conn: db.Connection, scan_id: UUID, owner: str) -> bool:
    """The scan is the owner's (404 otherwise); True when this transaction creates it.
    Owners never change, so an existing scan needs no lock."""
    if _own_scan(conn, scan_id, owner) is not None:
        return False
    conn.execute(SQL["claim"], {"key": f"line-scan:{scan_id}"})
    return _own_scan(conn, scan_id, owner) is None  # a first PUT that won may have committed


def _lock_tile(conn: db.Connection, scan_id: UUID, tile_id: UUID) -> tuple[DbStore, Row | None]:
    """The tile row locked until commit (or, missing, its key: two first PUTs take turns),
    in a store that records this transaction's events without reading it again."""
    store = DbStore(conn)
    return store, store.get("line_scan_tiles", scan_id, tile_id)


def _stored_as(tile: Mapping[str, Any] | None, sha256: bytes) -> Mapping[str, Any] | None:
    """The tile if it is `ready` with these bytes; 409 if `ready` with others."""
    if tile is None or tile["state"] != "ready":
        return None
    if bytes(tile["sha256"]) != sha256:
        raise errors.conflict(Code.CONFLICT, "this tile is stored with different bytes")
    return tile


def _begin(owner: str, scan_id: UUID, tile_id: UUID, sha256: bytes) -> dict[str, Any]:
    """Claim the scan and record the attempt (`pending`) in one transaction; returns the
    tile as it now is (already `ready` with these bytes: nothing recorded)."""
    with db.transaction() as conn:
        new = []
        if _claim_scan(conn, scan_id, owner):
            new.append(NewEvent("v1.linescan.scan_created", "line_scan", scan_id, {"owner": owner}))
        store, tile = _lock_tile(conn, scan_id, tile_id)
        done = _stored_as(tile, sha256)
        if done is not None:
            return _tile_api(done)
        new.append(
            NewEvent(
                "v1.linescan.tile_attempted", "line_scan_tile", tile_id, {"scanId": str(scan_id)}
            )
        )
        record(conn, f"user:{owner}", *new, store=store)
        return _projected(store, scan_id, tile_id)


def _settle_ready(
    owner: str, scan_id: UUID, tile_id: UUID, sha256: bytes, size: int
) -> dict[str, Any]:
    """The bytes are stored under their digest: `ready`, unless other bytes won first."""
    object_key = storage.line_scan_object_key(scan_id, tile_id, sha256)
    with db.transaction() as conn:
        store, tile = _lock_tile(conn, scan_id, tile_id)
        assert tile is not None, "_begin wrote it"
        if tile["state"] == "ready" and bytes(tile["sha256"]) == sha256:
            return _tile_api(tile)  # a PUT of the same bytes settled first
        if tile["state"] != "ready":
            payload = {"scanId": str(scan_id), "sha256": sha256.hex(), "size": size}
            record(
                conn,
                f"user:{owner}",
                NewEvent(
                    "v1.linescan.tile_ready",
                    "line_scan_tile",
                    tile_id,
                    payload | {"objectKey": object_key},
                ),
                store=store,
            )
            return _projected(store, scan_id, tile_id)
    # no row names these bytes, and none ever will: the tile is ready with others for good
    _discard(object_key)
    raise errors.conflict(Code.CONFLICT, "this tile is stored with different bytes")


def _settle_failed(
    owner: str, scan_id: UUID, tile_id: UUID, sha256: bytes, message: str
) -> dict[str, Any] | None:
    """Record `failed` with `message`, unless another PUT made the tile ready meanwhile
    (returned when with these bytes; 409 when with others)."""
    with db.transaction() as conn:
        store, tile = _lock_tile(conn, scan_id, tile_id)
        done = _stored_as(tile, sha256)
        if done is not None:
            return _tile_api(done)
        record(
            conn,
            f"user:{owner}",
            NewEvent(
                "v1.linescan.tile_failed",
                "line_scan_tile",
                tile_id,
                {"scanId": str(scan_id), "error": message},
            ),
            store=store,
        )
    return None


def _storage_failed(exc: Exception, scan_id: UUID, tile_id: UUID) -> NoReturn:
    log.warning(
        "line-scan tile storage failed",
        exc_info=exc,
        extra={"scan_id": str(scan_id), "tile_id": str(tile_id)},
    )
    raise SlipwayError(
        Code.STORAGE_FAILED,
        "storage is unavailable; repeat the PUT",
        status=503,
        permanent=False,
    ) from exc


def _discard(object_key: str) -> None:
    try:
        storage.delete(settings().data_bucket, object_key)
    except Exception:  # an orphan costs only space; the answer stands
        log.warning("could not remove a line-scan object", exc_info=True, extra={"key": object_key})


def put_tile(owner: str, scan_id: UUID, tile_id: UUID, body: bytes) -> dict[str, Any]:
    """Store one tile sent inline (the request body)."""
    _check_size(len(body))
    sha256 = hashlib.sha256(body).digest()
    tile = _begin(owner, scan_id, tile_id, sha256)
    if tile["state"] == "ready":
        return tile  # the same bytes again: already done
    object_key = storage.line_scan_object_key(scan_id, tile_id, sha256)
    try:
        storage.put_bytes(settings().data_bucket, object_key, body, STORED_TYPE)
    except Exception as exc:
        done = _settle_failed(owner, scan_id, tile_id, sha256, STORAGE_UNAVAILABLE)
        if done is not None:
            return done
        _storage_failed(exc, scan_id, tile_id)
    return _settle_ready(owner, scan_id, tile_id, sha256, len(body))


def sign_upload(
    owner: str, scan_id: UUID, tile_id: UUID, size: int, sha256: bytes
) -> dict[str, Any]:
    """Record the attempt (`pending`), then return where to PUT the bytes: a URL whose
    signature covers their length and SHA-256, so storage refuses any other body.
    `upload` is null when the tile is already `ready` with these bytes."""
    _check_size(size)
    tile = _begin(owner, scan_id, tile_id, sha256)
    if tile["state"] == "ready":
        return tile | {"upload": None}
    ttl = settings().url_ttl_seconds
    signed = storage.presign_put(
        settings().data_bucket,
        storage.line_scan_object_key(scan_id, tile_id, sha256),
        content_type=STORED_TYPE,
        size=size,
        sha256=sha256,
        ttl=ttl,
    )
    return tile | {
        "upload": {
            "method": "PUT",
            "url": signed.url,
            "headers": signed.headers,
            "expiresAt": rfc3339(datetime.now(UTC) + timedelta(seconds=ttl)),
        }
    }


def _stored_digest(object_key: str) -> tuple[bytes, int] | None:
    """SHA-256 and size of the stored object, hashed from its bytes (None: not there)."""
    if storage.head(settings().data_bucket, object_key) is None:
        return None
    digest, size = hashlib.sha256(), 0
    for chunk in storage.iter_chunks(settings().data_bucket, object_key, MiB):
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size


def _owned_tile(owner: str, scan_id: UUID, tile_id: UUID) -> Mapping[str, Any]:
    """The tile row of the owner's scan; 404 for another owner's scan or no such tile."""
    with db.connect() as conn:
        if _own_scan(conn, scan_id, owner) is None:
            raise errors.not_found("line scan")
        tile = conn.execute(SQL["get_tile"], {"scan_id": scan_id, "tile_id": tile_id}).fetchone()
    if tile is None:
        raise errors.not_found("tile")
    return tile


def complete_upload(owner: str, scan_id: UUID, tile_id: UUID, sha256: bytes) -> dict[str, Any]:
    """The bytes were PUT to the signed URL: hash what storage holds, then `ready`."""
    tile = _owned_tile(owner, scan_id, tile_id)
    object_key = storage.line_scan_object_key(scan_id, tile_id, sha256)
    try:
        done = _stored_as(tile, sha256)
    except SlipwayError:
        _discard(object_key)  # the tile is ready with other bytes for good
        raise
    if done is not None:
        return _tile_api(done)
    try:
        stored = _stored_digest(object_key)
    except Exception as exc:
        done_meanwhile = _settle_failed(owner, scan_id, tile_id, sha256, STORAGE_UNAVAILABLE)
        if done_meanwhile is not None:
            return done_meanwhile
        _storage_failed(exc, scan_id, tile_id)
    if stored is None:
        raise errors.conflict(Code.NOT_UPLOADED, "storage does not hold these bytes; PUT them")
    digest, size = stored
    if digest != sha256 or size > MAX_TILE_BYTES:
        if _settle_failed(owner, scan_id, tile_id, sha256, STORED_BYTES_DIFFER) is None:
            _discard(object_key)
        raise errors.conflict(Code.CHECKSUM_MISMATCH, STORED_BYTES_DIFFER)
    return _settle_ready(owner, scan_id, tile_id, sha256, size)


def get_tile(owner: str, scan_id: UUID, tile_id: UUID) -> bytes:
    tile = _owned_tile(owner, scan_id, tile_id)
    if tile["state"] != "ready":
        raise SlipwayError(
            Code.TILE_NOT_READY,
            f"the tile is {tile['state']}",
            status=409,
            details={"state": tile["state"]},
        )
    return storage.read_bytes(settings().data_bucket, tile["object_key"])


def list_scan(owner: str, scan_id: UUID) -> dict[str, Any]:
    with db.connect() as conn:
        if _own_scan(conn, scan_id, owner) is None:
            raise errors.not_found("line scan")
        tiles = conn.execute(SQL["tiles"], {"scan_id": scan_id}).fetchall()
    counts: dict[str, int] = {}
    for t in tiles:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {"scanId": str(scan_id), "counts": counts, "tiles": [_tile_api(t) for t in tiles]}
