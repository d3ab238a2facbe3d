"""Database down (contract "Health" and "Errors"): health answers 503 naming the database
within 5 s, other routes 503 UNAVAILABLE within a few seconds (never a 30 s hang, never a
500), and everything answers 200 again once Postgres is back.

This stops the session stack's Postgres for a few seconds and always starts it again."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from slipway import db
from slipway_local.stack import Stack
from tests.integration.conftest import library_settings
from tests.support import token, wait_for

FAST = 5.0  # seconds: the contract's bound for health; the routes get the same
SLIDE = {"kind": "slide", "filename": "a.svs", "size": 1000, "contentType": "image/tiff"}


def timed(method: str, url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    reply = requests.request(method, url, timeout=40, **kwargs)
    return reply, time.monotonic() - started


def test_database_down_is_a_fast_503_and_recovers(local_stack: Stack, api: str) -> None:
    bearer = {"Authorization": f"Bearer {token('outage')}"}
    routes = [
        ("GET", f"{api}/v1/telemetry/sessions", {}),  # the api function
        ("POST", f"{api}/v1/uploads", {"json": SLIDE}),  # presign
    ]
    for method, url, extra in routes:  # warm: each function holds a pooled connection
        assert timed(method, url, headers=bearer, **extra)[0].status_code in (200, 201)

    local_stack.cluster.stop()
    stopped = time.monotonic()
    try:
        health, took = timed("GET", f"{api}/v1/health")
        assert health.status_code == 503, health.text[:300]
        assert took < FAST, f"health took {took:.1f} s"
        body = health.json()
        assert body["database"] != "ok" and body["storage"] == "ok", body
        assert body["error"]["code"] == "UNAVAILABLE" and "database" in body["error"]["message"]

        # twice: the first request finds its pooled connection dead, the second an empty pool
        for method, url, extra in routes * 2:
            reply, took = timed(method, url, headers=bearer, **extra)
            assert reply.status_code == 503, (url, reply.status_code, reply.text[:300])
            assert took < FAST, f"{url} took {took:.1f} s"
            body = reply.json()
            assert set(body) == {"error"} and body["error"]["code"] == "UNAVAILABLE", body
            assert "database" in body["error"]["message"], body
    finally:
        # Keep the outage longer than the pool's idle-check window, so that every pooled
        # connection of every function (and of this process) is pinged before its next use.
        time.sleep(max(0.0, db.IDLE_CHECK_SECONDS + 0.5 - (time.monotonic() - stopped)))
        local_stack.cluster.start()
        db.close_pool()
        wait_for(
            lambda: requests.get(f"{api}/v1/health", timeout=10).status_code == 200,
            timeout=60,
            what="health 200 after Postgres restarted",
        )

    for method, url, extra in routes:
        assert timed(method, url, headers=bearer, **extra)[0].status_code in (200, 201)
    with db.connect() as conn:  # this process's library recovers too
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_a_busy_pool_waits_on_when_the_database_is_up(
    stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting past `db_wait_seconds` only asks whether Postgres is up; when it is, the
    request keeps waiting for a connection instead of answering 503."""
    with (
        library_settings(SLIPWAY_DB_POOL_MAX="2", SLIPWAY_DB_WAIT_SECONDS="0.2"),
        ExitStack() as held,
    ):
        for _ in range(2):  # every connection of the pool, busy
            held.enter_context(db.connect())
        reachable = db._reachable
        asked: list[bool] = []

        def probe_then_free_one() -> bool:
            asked.append(reachable())
            held.close()  # the busy requests finish just as the probe answers
            return asked[-1]

        monkeypatch.setattr(db, "_reachable", probe_then_free_one)
        with db.connect() as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert asked == [True]
