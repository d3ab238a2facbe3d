"""Line-scan tiles (seed adr-line-scan-tile-upload): DB-first `pending → ready | failed`.

The row says `pending` (attempt counted) before the bytes go to storage, `ready` after;
a storage error leaves `failed` with the error and answers 503. Repeating the PUT is safe
and converges to `ready`; reads serve bytes only from `ready` tiles.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from slipway import db, errors, queries, storage
from slipway.config import MiB, settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent, rfc3339
from slipway.projections import record

log = logging.getLogger(__name__)
SQL = queries.load("linescan")
MAX_TILE_BYTES = 5 * MiB


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


def _own_scan(
    conn: db.Connection, scan_id: UUID, owner: str, *, lock: bool
) -> Mapping[str, Any] | None:
    scan = conn.execute(SQL["lock_scan" if lock else "get_scan"], {"id": scan_id}).fetchone()
    if scan is not None and scan["owner"] != owner:
        raise errors.not_found("line scan")
    return scan


def put_tile(owner: str, scan_id: UUID, tile_id: UUID, body: bytes) -> dict[str, Any]:
    if not body:
        raise errors.bad_request("the tile body is empty")
    if len(body) > MAX_TILE_BYTES:
        raise SlipwayError(Code.PAYLOAD_TOO_LARGE, "a tile is at most 5 MiB", status=413)
    sha256 = hashlib.sha256(body).digest()
    actor = f"user:{owner}"
    key = {"scan_id": scan_id, "tile_id": tile_id}
    with db.transaction() as conn:
        new = []
        if _own_scan(conn, scan_id, owner, lock=True) is None:
            new.append(NewEvent("v1.linescan.scan_created", "line_scan", scan_id, {"owner": owner}))
        tile = conn.execute(SQL["lock_tile"], key).fetchone()
        if tile is not None and tile["state"] == "ready":
            if bytes(tile["sha256"]) == sha256:
                return _tile_api(tile)  # the same bytes again: already done
            raise errors.conflict(Code.CONFLICT, "this tile is stored with different bytes")
        new.append(
            NewEvent(
                "v1.linescan.tile_attempted", "line_scan_tile", tile_id, {"scanId": str(scan_id)}
            )
        )
        record(conn, actor, *new)
    object_key = storage.line_scan_tile_key(scan_id, tile_id)
    try:
        storage.put_bytes(settings().data_bucket, object_key, body, "application/octet-stream")
    except Exception as exc:
        log.warning(
            "line-scan tile storage failed",
            exc_info=True,
            extra={"scan_id": str(scan_id), "tile_id": str(tile_id)},
        )
        with db.transaction() as conn:
            record(
                conn,
                actor,
                NewEvent(
                    "v1.linescan.tile_failed",
                    "line_scan_tile",
                    tile_id,
                    {
                        "scanId": str(scan_id),
                        "error": f"{type(exc).__name__}: {exc}"[:500],
                    },
                ),
            )
        raise SlipwayError(
            Code.STORAGE_FAILED,
            "storage is unavailable; repeat the PUT",
            status=503,
            permanent=False,
        ) from exc
    with db.transaction() as conn:
        record(
            conn,
            actor,
            NewEvent(
                "v1.linescan.tile_ready",
                "line_scan_tile",
                tile_id,
                {
                    "scanId": str(scan_id),
                    "sha256": sha256.hex(),
                    "size": len(body),
                    "objectKey": object_key,
                },
            ),
        )
        row = conn.execute(SQL["get_tile"], key).fetchone()
    assert row is not None
    return _tile_api(row)


def get_tile(owner: str, scan_id: UUID, tile_id: UUID) -> bytes:
    with db.connect() as conn:
        if _own_scan(conn, scan_id, owner, lock=False) is None:
            raise errors.not_found("line scan")
        tile = conn.execute(SQL["get_tile"], {"scan_id": scan_id, "tile_id": tile_id}).fetchone()
    if tile is None:
        raise errors.not_found("tile")
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
        if _own_scan(conn, scan_id, owner, lock=False) is None:
            raise errors.not_found("line scan")
        tiles = conn.execute(SQL["tiles"], {"scan_id": scan_id}).fetchall()
    counts: dict[str, int] = {}
    for t in tiles:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {"scanId": str(scan_id), "counts": counts, "tiles": [_tile_api(t) for t in tiles]}
