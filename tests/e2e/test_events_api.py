"""GET /v1/events over HTTP: paging with since/next, digests, long-poll timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from blake3 import blake3

from slipway.client import Client
from slipway.events import canonical_cbor


def head(reader: Client) -> int:
    since = 0
    while True:
        page = reader.events(since, 1000)
        if not page["events"]:
            return since
        since = page["next"]


def test_pages_chain_by_next_and_digests_match_the_payload(
    client_for: Callable[..., Client],
) -> None:
    reader = client_for("auditor", "events:read")
    for name in ("a.bin", "b.bin", "c.bin"):
        client_for("writer").create_upload("slide", name, 10)
    first = reader.events(0, 2)
    assert [e["sequence"] for e in first["events"]] == [1, 2]
    assert first["next"] == 2
    second = reader.events(first["next"], 2)
    assert second["events"][0]["sequence"] == 3
    for event in first["events"] + second["events"]:
        assert event["payloadDigest"] == blake3(canonical_cbor(event["payload"])).hexdigest()
        assert event["eventType"].startswith("v1.")
    empty = reader.events(head(reader), 10)
    assert empty["events"] == [] and empty["next"] == head(reader)


def test_long_poll_returns_soon_after_a_commit_and_empty_after_wait(
    client_for: Callable[..., Client],
) -> None:
    reader = client_for("auditor", "events:read")
    since = head(reader)
    got: dict[str, float | list[dict[str, object]]] = {}

    def poll() -> None:
        page = reader.events(since, 10, wait=10)
        got["at"] = time.monotonic()
        got["events"] = page["events"]

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(1.0)
    client_for("writer").create_upload("slide", "b.bin", 10)
    committed = time.monotonic()  # the create answered: its event is committed
    waiter.join(15)
    assert got["events"], "woken by the new event"
    assert float(got["at"]) - committed < 0.5  # type: ignore[arg-type]

    started = time.monotonic()
    page = reader.events(head(reader) + 10**6, 10, wait=1)
    assert page["events"] == []
    assert 1.0 <= time.monotonic() - started < 2.0
