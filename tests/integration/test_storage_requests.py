"""How the storage client talks to the real S3 server: a small body goes at once (no
`Expect: 100-continue` round trip), a large one still waits for `100 Continue`, and
successive requests share one kept-alive connection."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from slipway import storage

KiB = 1024


def bucket() -> str:
    return os.environ["SLIPWAY_DATA_BUCKET"]


@contextmanager
def sent_headers() -> Iterator[list[dict[str, str]]]:
    """The headers of each request the storage client sends meanwhile, as sent."""
    seen: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        headers = request.headers.items()
        seen.append({k: v.decode() if isinstance(v, bytes) else v for k, v in headers})

    events = storage.client().meta.events
    events.register("before-send.s3", record)
    try:
        yield seen
    finally:
        events.unregister("before-send.s3", record)


def test_a_small_put_goes_at_once_and_a_large_one_waits_for_100_continue() -> None:
    small = os.urandom(64 * KiB)
    large = os.urandom(storage.EXPECT_CONTINUE_FROM)
    keys = [f"test-requests/{uuid.uuid4()}" for _ in range(2)]
    with sent_headers() as seen:
        storage.put_bytes(bucket(), keys[0], small, "application/octet-stream")
        storage.put_bytes(bucket(), keys[1], large, "application/octet-stream")
    assert "Expect" not in seen[0]
    assert seen[1]["Expect"] == "100-continue"
    assert storage.read_bytes(bucket(), keys[0]) == small
    assert storage.read_bytes(bucket(), keys[1]) == large


def test_successive_requests_share_one_connection(caplog: pytest.LogCaptureFixture) -> None:
    """LocalStack closes a connection after each answer unless the request asks for
    keep-alive, as AWS keeps it by default: otherwise every tile PUT connects anew."""
    key = f"test-requests/{uuid.uuid4()}"
    storage.put_bytes(bucket(), key, b"first", "text/plain")  # the pool's connection
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    for n in range(5):
        storage.put_bytes(bucket(), key, os.urandom(64 * KiB), "application/octet-stream")
        assert storage.head(bucket(), key) is not None, n
    connects = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(("Starting new", "Resetting dropped"))
    ]
    assert connects == [], connects
