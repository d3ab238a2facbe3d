"""Slides as the API shows them: the tile job's status and, once tiled, where the Deep
Zoom pyramid can be read. No pyvips here; tiling itself is in `tiling`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from slipway import auth, db, errors, jobs, queries, storage, tilestore, uploads
from slipway.config import settings
from slipway.tilestore import DZI_NAME, dzi_key

SQL = queries.load("slides")
TILE_URL_TTL_SECONDS = 3600


def _status_and_error(upload: uploads.Upload, job: jobs.Job | None) -> tuple[str, Any]:
    if upload.state == "failed":
        return "FAILED", {"code": upload.error_code, "message": upload.error_message}
    if job is None:
        return "QUEUED", None
    if job.status == "CANCELLED":
        return "FAILED", {"code": "CANCELLED", "message": "the tile job was cancelled"}
    if job.status == "FAILED":
        return "FAILED", job.error
    return job.status, None


def load_slide(
    upload_id: UUID, owner: str | None = None
) -> tuple[uploads.Upload, dict[str, Any] | None]:
    upload = uploads.load(upload_id, owner)
    if upload.kind != "slide":
        raise errors.not_found("slide")
    with db.connect() as conn:
        slide = conn.execute(SQL["get"], {"upload_id": upload_id}).fetchone()
    return upload, slide


def view(upload_id: UUID, owner: str, base_url: str) -> dict[str, Any]:
    upload, slide = load_slide(upload_id, owner)
    with db.connect() as conn:
        tile_jobs = [j for j in jobs.for_upload(conn, upload_id) if j.type == "tile"]
    job = tile_jobs[-1] if tile_jobs else None
    status, error = _status_and_error(upload, job)
    body: dict[str, Any] = {
        "uploadId": str(upload_id),
        "status": status,
        "jobId": str(job.id) if job else None,
        "width": None,
        "height": None,
        "tileSize": None,
        "overlap": None,
        "format": None,
        "levels": None,
        "tileCount": None,
        "dziUrl": None,
        "viewerUrl": None,
        "error": error,
    }
    if slide is not None and status == "SUCCEEDED":
        token = auth.capability(str(upload_id), settings().viewer_ttl_seconds)
        root = f"{base_url}/v1/slides/{upload_id}"
        body |= {
            "width": slide["width"],
            "height": slide["height"],
            "tileSize": slide["tile_size"],
            "overlap": slide["overlap"],
            "format": slide["format"],
            "levels": slide["levels"],
            "tileCount": slide["tile_count"],
            "dziUrl": f"{root}/dzi/{token}/{DZI_NAME}.dzi",
            "viewerUrl": f"{root}/viewer/{token}",
        }
    return body


def _tiled(upload_id: UUID, token: str) -> dict[str, Any]:
    auth.check_capability(str(upload_id), token)
    _, slide = load_slide(upload_id)
    if slide is None:
        raise errors.not_found("slide pyramid")
    return slide


def dzi_descriptor(upload_id: UUID, token: str) -> bytes:
    slide = _tiled(upload_id, token)
    return storage.read_bytes(settings().tiles_bucket, dzi_key(slide["tiles_prefix"]))


@dataclass(frozen=True)
class Tile:
    """One tile as the API answers it: its bytes (archive layout) or where to fetch it."""

    data: bytes | None = None
    redirect: str | None = None


def tile(upload_id: UUID, token: str, level: int, name: str) -> Tile:
    slide = _tiled(upload_id, token)
    bucket, prefix = settings().tiles_bucket, slide["tiles_prefix"]
    if slide["layout"] == "archive":
        data = tilestore.read_archived_tile(bucket, prefix, level, name)
        if data is None:
            raise errors.not_found("tile")
        return Tile(data=data)
    key = tilestore.tile_key(prefix, level, name)
    return Tile(redirect=storage.presign_get(bucket, key, ttl=TILE_URL_TTL_SECONDS))
