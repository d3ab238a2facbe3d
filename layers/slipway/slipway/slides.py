"""Slides as the API shows them: the tile job's status and, once tiled, where the Deep
Zoom pyramid, its IIIF Image API 3.0 view and the associated images can be read. No pyvips
here; tiling itself is in `tiling`. See docs/serving.md."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from slipway import auth, db, errors, jobs, queries, storage, tilestore, uploads
from slipway.config import settings
from slipway.tilestore import DZI_NAME, dzi_key

SQL = queries.load("slides")
TILE_URL_TTL_SECONDS = 3600
IIIF_CONTEXT = "http://iiif.io/api/image/3/context.json"
ASSOCIATED = ("label", "macro", "thumbnail")
_IMAGE_TYPES = {"image/jpeg", "image/png"}
_REGION = re.compile(r"(\d{1,9}),(\d{1,9}),(\d{1,9}),(\d{1,9})")
_SIZE = re.compile(r"(\d{1,9}),(\d{0,9})")


def _status_and_error(upload: uploads.Upload, job: jobs.Job | None) -> tuple[str, Any]:
    if upload.state == "failed":
        return "FAILED", {"code": upload.error_code, "message": upload.error_message}
    if job is None:
        return "QUEUED", None
    if job.status == "CANCELLED":
        return "FAILED", {"code": "CANCELLED", "message": "the tile job was cancelled"}
    if job.status == "FAILED":
        return "FAILED", job.error
    return job.to_api()["status"], None  # a fanned-out tile job WAITING is RUNNING


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
        "source": None,
        "associated": None,
        "iiifUrl": None,
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
            "source": slide["source"],
            "associated": associated_urls(upload_id, slide, token, f"{root}/"),
            "iiifUrl": f"{root}/iiif/{token}" if iiif_ready(slide) else None,
        }
    return body


def iiif_ready(slide: dict[str, Any]) -> bool:
    """IIIF tiles are DZI tiles only when they abut (overlap 0) and are JPEG (level 0)."""
    return bool(slide["overlap"] == 0 and slide["format"] == "jpeg")


def associated_urls(
    upload_id: UUID, slide: dict[str, Any], token: str, root: str
) -> dict[str, str]:
    """{name: URL} of the associated images the file holds. Their capability is a separate
    one (subject `{id}/associated`), valid as long as `token`: the tile links (DZI, IIIF)
    that a lab pastes into other viewers never unlock a label with a patient's name."""
    held = [name for name in ASSOCIATED if name in (slide["associated"] or {})]
    if not held:
        return {}
    ttl = max(1, int(token.partition("-")[0]) - int(time.time()))
    grant = auth.capability(f"{upload_id}/associated", ttl)
    return {name: f"{root}associated/{grant}/{name}" for name in held}


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
    return _read_tile(_tiled(upload_id, token), level, name)


def _read_tile(slide: dict[str, Any], level: int, name: str) -> Tile:
    bucket, prefix = settings().tiles_bucket, slide["tiles_prefix"]
    if slide["layout"] == "archive":
        data = tilestore.read_archived_tile(bucket, prefix, level, name)
        if data is None:
            raise errors.not_found("tile")
        return Tile(data=data)
    key = tilestore.tile_key(prefix, level, name)
    return Tile(redirect=storage.presign_get(bucket, key, ttl=TILE_URL_TTL_SECONDS))


# IIIF Image API 3.0, level 0, served from the DZI pyramid --------------------------------


def _iiif_slide(upload_id: UUID, token: str) -> dict[str, Any]:
    slide = _tiled(upload_id, token)
    if not iiif_ready(slide):
        raise errors.not_found("IIIF service (this pyramid has overlapping or non-JPEG tiles)")
    return slide


def _level_size(slide: dict[str, Any], k: int) -> tuple[int, int]:
    """The image's size at scale factor 2**k: a DZI level's size."""
    return math.ceil(slide["width"] / 2**k), math.ceil(slide["height"] / 2**k)


def iiif_info(upload_id: UUID, token: str, service_url: str) -> dict[str, Any]:
    """info.json: one tile size at every scale factor the pyramid has, and as `sizes` the
    levels that are one tile each (the whole image, smaller)."""
    slide = _iiif_slide(upload_id, token)
    size, levels = slide["tile_size"], slide["levels"]
    whole = [_level_size(slide, k) for k in reversed(range(levels))]
    return {
        "@context": IIIF_CONTEXT,
        "id": service_url,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level0",
        "width": slide["width"],
        "height": slide["height"],
        "tiles": [
            {
                "type": "Tile",
                "width": size,
                "height": size,
                "scaleFactors": [2**k for k in range(levels)],
            }
        ],
        "sizes": [
            {"type": "Size", "width": w, "height": h} for w, h in whole if w <= size and h <= size
        ],
    }


def _region(slide: dict[str, Any], region: str) -> tuple[int, int, int, int]:
    if region == "full":
        return 0, 0, slide["width"], slide["height"]
    found = _REGION.fullmatch(region)
    if not found:
        raise errors.bad_request("region: this service (level 0) takes full or x,y,w,h")
    x, y, w, h = (int(v) for v in found.groups())
    return x, y, w, h


def _dzi_tile_of(slide: dict[str, Any], region: str, size: str) -> tuple[int, str]:
    """The DZI (level, 'col_row') whose pixels are exactly this IIIF region at this size.
    With tile size T and overlap 0, the tile at scale factor s = 2**k covering x, y is
    DZI level maxLevel - k, col x / (T s), row y / (T s) (docs/serving.md)."""
    x, y, w, h = _region(slide, region)
    if size == "max":
        wanted: tuple[int | None, int | None] = (w, h)
    elif fixed := _SIZE.fullmatch(size):
        wanted = (int(fixed[1]), int(fixed[2]) if fixed[2] else None)
    else:
        raise errors.bad_request("size: this service (level 0) takes max, w,h or w,")
    width, height, tile_size = slide["width"], slide["height"], slide["tile_size"]
    for k in range(slide["levels"]):
        span = tile_size * 2**k
        if x % span or y % span or x >= width or y >= height:
            continue
        if (w, h) != (min(span, width - x), min(span, height - y)):
            continue
        out_w, out_h = math.ceil(w / 2**k), math.ceil(h / 2**k)
        if wanted[0] == out_w and wanted[1] in (out_h, None):
            return slide["levels"] - 1 - k, f"{x // span}_{y // span}"
    raise errors.not_found("IIIF tile (a level 0 service: only the tiles and sizes it lists)")


def iiif_tile(
    upload_id: UUID, token: str, region: str, size: str, rotation: str, quality: str
) -> Tile:
    slide = _iiif_slide(upload_id, token)
    if rotation != "0":
        raise errors.bad_request("rotation: this service (level 0) takes 0 only")
    if quality != "default.jpg":
        raise errors.bad_request("quality and format: this service (level 0) takes default.jpg")
    level, position = _dzi_tile_of(slide, unquote(region), unquote(size))
    return _read_tile(slide, level, f"{position}.jpeg")


# associated images ---------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    data: bytes
    media_type: str


def associated_image(upload_id: UUID, token: str, name: str) -> Image:
    """An associated image the file holds (label, macro, thumbnail): its stored object."""
    auth.check_capability(f"{upload_id}/associated", token)
    _, slide = load_slide(upload_id)
    entry = ((slide or {}).get("associated") or {}).get(name)
    if slide is None or entry is None or not entry["key"].startswith(slide["tiles_prefix"]):
        raise errors.not_found("associated image")
    media_type = entry.get("mediaType")
    return Image(
        storage.read_bytes(settings().tiles_bucket, entry["key"]),
        media_type if media_type in _IMAGE_TYPES else "application/octet-stream",
    )


def viewer_facts(upload_id: UUID, token: str) -> dict[str, Any]:
    """What the viewer page shows beside the slide: its name, what the file says, links."""
    auth.check_capability(str(upload_id), token)
    upload, slide = load_slide(upload_id)
    if slide is None:
        raise errors.not_found("slide pyramid")
    return {
        "filename": upload.filename,
        "width": slide["width"],
        "height": slide["height"],
        "source": slide["source"],
        "associated": associated_urls(upload_id, slide, token, "../"),
        "iiif": f"../iiif/{token}/info.json" if iiif_ready(slide) else None,
    }
