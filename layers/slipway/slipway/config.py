"""Settings, read once from the environment (the same names locally and on Lambda)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

MiB = 1024 * 1024
GiB = 1024 * MiB


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    uploads_bucket: str
    data_bucket: str
    tiles_bucket: str
    upload_events_queue_url: str | None
    job_queue_urls: dict[str, str] = field(default_factory=dict)
    jwt_secret: str | None = None
    environment: str = ""  # SLIPWAY_ENV; "local" only on the local stack (weak secrets allowed)
    token_max_lifetime_seconds: int = 24 * 3600
    db_wait_seconds: float = 2.0  # for a pooled connection, before asking if Postgres is up
    db_connect_timeout_seconds: int = 2
    db_pool_max: int = 4
    max_upload_size: int = 20 * GiB
    multipart_threshold: int = 64 * MiB
    part_size: int = 64 * MiB
    part_url_batch: int = 100
    url_ttl_seconds: int = 900
    multipart_ttl_seconds: int = 24 * 3600
    orphan_grace_seconds: int = 3600
    viewer_ttl_seconds: int = 12 * 3600
    job_lease_seconds: int = 120
    job_cancel_poll_seconds: float = 5.0  # a running job looks this often for a cancel
    backoff_base_seconds: float = 5.0
    notification_grace_seconds: int = 60
    blob_audit_sample: int = 20  # blobs re-hashed by each hourly check
    max_image_pixels: int = 500_000 * 500_000  # a 20 GiB JPEG slide is 100–170 Gpx
    max_single_pass_pixels: int = 100_000 * 200_000  # an image that is not fanned out
    max_pixels_per_byte: int = 1000
    max_decoded_bytes: int = 4 * GiB  # a slide tifffile/OpenSlide decodes into memory
    max_local_copy_bytes: int = 2 * GiB  # a slide whose reader needs a file path (DICOM)
    # fan-out (docs/tiling.md#fan-out): slides over this many pixels tile as regions of
    # about tile_region_pixels each, one job per region, on the tile queue
    tile_fanout_pixels: int = 4_000_000_000
    tile_region_pixels: int = 2_000_000_000
    tile_region_depth: int | None = None  # levels per region - 1; None: from the region size


@cache
def settings() -> Settings:
    env = os.environ
    queues = {
        job_type: url
        for job_type, url in (
            ("tile", env.get("SLIPWAY_TILE_QUEUE_URL")),
            ("tile_region", env.get("SLIPWAY_TILE_QUEUE_URL")),  # a fanned-out slide's parts
            ("tile_finish", env.get("SLIPWAY_TILE_QUEUE_URL")),
            ("parse", env.get("SLIPWAY_PARSE_QUEUE_URL")),
        )
        if url
    }
    return Settings(
        database_url=env.get("DATABASE_URL", ""),
        uploads_bucket=env.get("SLIPWAY_UPLOADS_BUCKET", "slipway-uploads"),
        data_bucket=env.get("SLIPWAY_DATA_BUCKET", "slipway-data"),
        tiles_bucket=env.get("SLIPWAY_TILES_BUCKET", "slipway-tiles"),
        upload_events_queue_url=env.get("SLIPWAY_UPLOAD_EVENTS_QUEUE_URL") or None,
        job_queue_urls=queues,
        jwt_secret=env.get("SLIPWAY_JWT_SECRET") or None,
        environment=env.get("SLIPWAY_ENV", ""),
        token_max_lifetime_seconds=_int("SLIPWAY_TOKEN_MAX_LIFETIME_SECONDS", 24 * 3600),
        db_wait_seconds=float(env.get("SLIPWAY_DB_WAIT_SECONDS") or 2.0),
        db_connect_timeout_seconds=_int("SLIPWAY_DB_CONNECT_TIMEOUT_SECONDS", 2),
        db_pool_max=_int("SLIPWAY_DB_POOL_MAX", 4),
        max_upload_size=_int("SLIPWAY_MAX_UPLOAD_SIZE", 20 * GiB),
        multipart_threshold=_int("SLIPWAY_MULTIPART_THRESHOLD", 64 * MiB),
        part_size=_int("SLIPWAY_PART_SIZE", 64 * MiB),
        part_url_batch=_int("SLIPWAY_PART_URL_BATCH", 100),
        url_ttl_seconds=min(_int("SLIPWAY_URL_TTL_SECONDS", 900), 900),
        multipart_ttl_seconds=_int("SLIPWAY_MULTIPART_TTL_SECONDS", 24 * 3600),
        orphan_grace_seconds=_int("SLIPWAY_ORPHAN_GRACE_SECONDS", 3600),
        viewer_ttl_seconds=_int("SLIPWAY_VIEWER_TTL_SECONDS", 12 * 3600),
        job_lease_seconds=_int("SLIPWAY_JOB_LEASE_SECONDS", 120),
        job_cancel_poll_seconds=float(env.get("SLIPWAY_JOB_CANCEL_POLL_SECONDS") or 5.0),
        backoff_base_seconds=float(env.get("SLIPWAY_BACKOFF_BASE_SECONDS") or 5.0),
        notification_grace_seconds=_int("SLIPWAY_NOTIFICATION_GRACE_SECONDS", 60),
        blob_audit_sample=_int("SLIPWAY_BLOB_AUDIT_SAMPLE", 20),
        max_image_pixels=_int("SLIPWAY_MAX_IMAGE_PIXELS", 500_000 * 500_000),
        max_single_pass_pixels=_int("SLIPWAY_MAX_SINGLE_PASS_PIXELS", 100_000 * 200_000),
        max_pixels_per_byte=_int("SLIPWAY_MAX_PIXELS_PER_BYTE", 1000),
        max_decoded_bytes=_int("SLIPWAY_MAX_DECODED_BYTES", 4 * GiB),
        max_local_copy_bytes=_int("SLIPWAY_MAX_LOCAL_COPY_BYTES", 2 * GiB),
        tile_fanout_pixels=_int("SLIPWAY_TILE_FANOUT_PIXELS", 4_000_000_000),
        tile_region_pixels=_int("SLIPWAY_TILE_REGION_PIXELS", 2_000_000_000),
        tile_region_depth=_int("SLIPWAY_TILE_REGION_DEPTH", 0) or None,
    )
