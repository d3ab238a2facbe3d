"""Health answers by its deadline even when a probe hangs (contract: within 5 s)."""

from __future__ import annotations

import threading
import time

import pytest

from slipway import db
from slipway.api import meta


def fails() -> None:
    raise db.unavailable()


def test_a_hung_probe_is_down_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meta, "HEALTH_DEADLINE_SECONDS", 0.3)
    hung = threading.Event()
    try:
        started = time.monotonic()
        states = meta._checks({"database": hung.wait, "storage": lambda: None, "other": fails})
        took = time.monotonic() - started
    finally:
        hung.set()
    assert states == {"database": "down: timeout", "storage": "ok", "other": "down: UNAVAILABLE"}
    assert took < 1.0
