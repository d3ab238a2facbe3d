"""Line-scan tiles: DB-first, and a real storage outage (a dead S3 endpoint)."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import psycopg
import pytest

from slipway import linescan, storage
from slipway.config import settings
from slipway.errors import SlipwayError
from tests.integration.conftest import library_settings
from tests.support import free_ports

OWNER = "scanner"


def test_a_storage_outage_leaves_failed_and_a_repeat_converges(
    conn: psycopg.Connection[Any],
) -> None:
    scan, tile, body = uuid.uuid4(), uuid.uuid4(), os.urandom(4096)
    (dead_port,) = free_ports(1)  # nothing listens there: connections are refused
    dead = library_settings(AWS_ENDPOINT_URL=f"http://127.0.0.1:{dead_port}", AWS_MAX_ATTEMPTS="1")
    with dead, pytest.raises(SlipwayError) as caught:
        linescan.put_tile(OWNER, scan, tile, body)
    assert caught.value.status == 503 and caught.value.code.value == "STORAGE_FAILED"
    row = conn.execute("SELECT * FROM line_scan_tiles WHERE tile_id = %s", (tile,)).fetchone()
    assert row is not None
    assert row["state"] == "failed" and row["attempts"] == 1
    assert row["last_error"] == "storage unavailable", "stable, with no endpoint in it"
    with pytest.raises(SlipwayError) as caught:
        linescan.get_tile(OWNER, scan, tile)
    assert caught.value.status == 409 and caught.value.details == {"state": "failed"}

    done = linescan.put_tile(OWNER, scan, tile, body)  # storage is back
    assert done["state"] == "ready" and done["attempts"] == 2
    assert done["sha256"] == hashlib.sha256(body).hexdigest()
    assert linescan.get_tile(OWNER, scan, tile) == body
    again = linescan.put_tile(OWNER, scan, tile, body)  # idempotent: nothing new
    assert again["attempts"] == 2
    with pytest.raises(SlipwayError) as caught:
        linescan.put_tile(OWNER, scan, tile, b"other bytes")
    assert caught.value.status == 409

    listing = linescan.list_scan(OWNER, scan)
    assert listing["counts"] == {"ready": 1}
    with pytest.raises(SlipwayError) as caught:
        linescan.list_scan("someone-else", scan)
    assert caught.value.status == 404


def test_the_row_is_pending_before_the_bytes_reach_storage(
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scan, tile = uuid.uuid4(), uuid.uuid4()
    seen: dict[str, Any] = {}

    def spy(bucket: str, key: str, data: bytes, content_type: str) -> None:
        seen["row"] = conn.execute(
            "SELECT state, attempts FROM line_scan_tiles WHERE tile_id = %s", (tile,)
        ).fetchone()
        real(bucket, key, data, content_type)

    from slipway import storage

    real = storage.put_bytes
    monkeypatch.setattr(storage, "put_bytes", spy)
    linescan.put_tile(OWNER, scan, tile, b"abc")
    assert seen["row"] == {"state": "pending", "attempts": 1}, "committed before the upload"


def test_sizes_are_checked() -> None:
    with pytest.raises(SlipwayError) as caught:
        linescan.put_tile(OWNER, uuid.uuid4(), uuid.uuid4(), b"")
    assert caught.value.status == 400
    with pytest.raises(SlipwayError) as caught:
        linescan.put_tile(OWNER, uuid.uuid4(), uuid.uuid4(), b"x" * (5 * 1024 * 1024 + 1))
    assert caught.value.status == 413


def test_complete_hashes_the_stored_bytes_before_ready(conn: psycopg.Connection[Any]) -> None:
    """Storage that ignores the signed checksum took other bytes: complete refuses them."""
    scan, tile, body = uuid.uuid4(), uuid.uuid4(), os.urandom(4096)
    sha = hashlib.sha256(body).digest()
    signed = linescan.sign_upload(OWNER, scan, tile, len(body), sha)
    assert signed["state"] == "pending" and signed["upload"]["headers"]
    key = storage.line_scan_object_key(scan, tile, sha)
    storage.put_bytes(settings().data_bucket, key, os.urandom(len(body)), "image/png")
    with pytest.raises(SlipwayError) as caught:
        linescan.complete_upload(OWNER, scan, tile, sha)
    assert caught.value.status == 409 and caught.value.code.value == "CHECKSUM_MISMATCH"
    row = conn.execute("SELECT * FROM line_scan_tiles WHERE tile_id = %s", (tile,)).fetchone()
    assert row is not None and row["state"] == "failed" and row["sha256"] is None
    assert row["last_error"] == "the stored bytes do not match the declared sha256"
    assert storage.head(settings().data_bucket, key) is None, "the wrong bytes are removed"

    storage.put_bytes(settings().data_bucket, key, body, "application/octet-stream")
    done = linescan.complete_upload(OWNER, scan, tile, sha)
    assert done["state"] == "ready" and done["sha256"] == sha.hex() and done["size"] == 4096
    assert linescan.get_tile(OWNER, scan, tile) == body


def test_a_text_body_type_is_415_before_anything_is_recorded() -> None:
    for refused in ("text/plain", "application/json", "image/", "imagex/png"):
        with pytest.raises(SlipwayError) as caught:
            linescan.check_media_type(refused)
        assert caught.value.status == 415
    for taken in (None, "application/octet-stream", "IMAGE/PNG", "image/tiff; x=1"):
        linescan.check_media_type(taken)
