"""Retry delays: exponential, jittered, capped."""

from __future__ import annotations

import pytest

from slipway import config, jobs


@pytest.fixture(autouse=True)
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_BACKOFF_BASE_SECONDS", raising=False)
    config.settings.cache_clear()


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 2.5, 5), (2, 5, 10), (3, 10, 20), (20, 450, 900)]
)
def test_delays_double_with_jitter_and_a_cap(attempt: int, low: float, high: float) -> None:
    delays = {jobs.backoff_seconds(attempt) for _ in range(200)}
    assert all(low <= d <= high for d in delays)
    assert len(delays) > 50, "jitter spreads retries out"
