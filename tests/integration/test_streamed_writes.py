"""Objects written as a stream (ObjectWriter: parts go up while the producer works, as
the tile archive does), against the real S3 server."""

from __future__ import annotations

import os
import uuid

import pytest
from botocore.exceptions import ClientError

from slipway import storage
from slipway.config import MiB

PART = 5 * MiB  # S3's smallest part


def bucket() -> str:
    return os.environ["SLIPWAY_DATA_BUCKET"]


def open_multiparts(key: str) -> list[str]:
    return [m for k, m, _ in storage.list_multipart_uploads(bucket(), key) if k == key]


def test_a_small_stream_is_one_put() -> None:
    key = f"test-streams/{uuid.uuid4()}"
    out = storage.ObjectWriter(bucket(), key, "text/plain", part_size=PART)
    out.write(b"hello ")
    out.write(b"world")
    assert storage.head(bucket(), key) is None and open_multiparts(key) == []
    out.close()
    assert storage.read_bytes(bucket(), key) == b"hello world"


def test_a_large_stream_goes_up_in_parts_and_appears_whole_on_close() -> None:
    key = f"test-streams/{uuid.uuid4()}"
    data = os.urandom(2 * PART + 12345)
    out = storage.ObjectWriter(bucket(), key, "application/octet-stream", part_size=PART)
    for start in range(0, len(data), 999_983):  # uneven pieces
        out.write(data[start : start + 999_983])
    assert storage.head(bucket(), key) is None, "not visible before close"
    assert len(open_multiparts(key)) == 1
    out.close()
    assert storage.read_bytes(bucket(), key) == data
    assert open_multiparts(key) == []


def test_an_aborted_stream_leaves_nothing() -> None:
    key = f"test-streams/{uuid.uuid4()}"
    out = storage.ObjectWriter(bucket(), key, "application/octet-stream", part_size=PART)
    out.write(os.urandom(PART + 1))
    out.abort()
    assert storage.head(bucket(), key) is None
    assert open_multiparts(key) == []


def test_a_failed_part_fails_the_close_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = storage.upload_part

    def flaky(bucket: str, key: str, multipart_id: str, number: int, data: bytes) -> storage.Part:
        if number == 2:
            raise ConnectionError("storage hiccup")
        return real(bucket, key, multipart_id, number, data)

    monkeypatch.setattr(storage, "upload_part", flaky)
    key = f"test-streams/{uuid.uuid4()}"
    out = storage.ObjectWriter(bucket(), key, "application/octet-stream", part_size=PART)
    out.write(os.urandom(2 * PART))  # part 2 is the last one: its error shows in close
    with pytest.raises(ConnectionError):
        out.close()
    assert storage.head(bucket(), key) is None
    assert open_multiparts(key) == []


def test_a_storage_error_raises_from_write() -> None:
    out = storage.ObjectWriter(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "k", "x", part_size=PART)
    with pytest.raises(ClientError):
        out.write(os.urandom(PART))
