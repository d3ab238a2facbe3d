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
    backoff_base_seconds: float = 5.0
    notification_grace_seconds: int = 60
    max_image_pixels: int = 100_000 * 200_000


@cache
def settings() -> Settings:
    env = os.environ
    queues = {
        job_type: url
        for job_type, url in (
            ("tile", env.get("SLIPWAY_TILE_QUEUE_URL")),
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
        backoff_base_seconds=float(env.get("SLIPWAY_BACKOFF_BASE_SECONDS") or 5.0),
        notification_grace_seconds=_int("SLIPWAY_NOTIFICATION_GRACE_SECONDS", 60),
        max_image_pixels=_int("SLIPWAY_MAX_IMAGE_PIXELS", 100_000 * 200_000),
    )
