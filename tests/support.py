"""Helpers the tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from slipway import auth

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MiB = 1024 * 1024
SECRET = "test-secret-for-the-slipway-suite-0123456789"

# Settings the test stack's functions (and this process) run with: small parts so
# multipart logic is exercised with small files, short leases, a pixel limit to trip.
TUNING = {
    "SLIPWAY_PART_SIZE": str(5 * MiB),
    "SLIPWAY_MULTIPART_THRESHOLD": str(8 * MiB),
    "SLIPWAY_MAX_IMAGE_PIXELS": str(400_000_000),
    "SLIPWAY_JOB_LEASE_SECONDS": "10",
    # fan-out (tests/integration/test_tile_fanout.py): TIFF slides over 20 Mpx (no other
    # test's) tile as regions of about 6 Mpx, aligned to 4 tiles
    "SLIPWAY_TILE_FANOUT_PIXELS": str(20_000_000),
    "SLIPWAY_TILE_REGION_PIXELS": str(6_000_000),
    "SLIPWAY_TILE_REGION_DEPTH": "2",
}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`slipway ARGS` as a user runs it, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "slipway.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_in_child(
    function: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`module.function(*args)` in a fresh Python process with this process's environment
    (the fault suites' victims: they SIGKILL themselves at a step boundary)."""
    module, name = function.rsplit(".", 1)
    script = f"import sys; from {module} import {name}; {name}(*sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for[T](
    check: Callable[[], T | None],
    timeout: float = 60,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll until `check` returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def token(user: str, *scopes: str) -> str:
    return auth.issue_token(user, scopes, secret=SECRET)


def count_events(c: psycopg.Connection[Any], subject_id: Any = None) -> int:
    if subject_id is None:
        row = c.execute("SELECT count(*) AS n FROM events").fetchone()
    else:
        row = c.execute(
            "SELECT count(*) AS n FROM events WHERE subject_id = %s", (subject_id,)
        ).fetchone()
    assert row is not None
    return int(row["n"] if isinstance(row, dict) else row[0])


def settled_upload(upload_id: str, timeout: float = 60) -> Any:
    """The upload once it is no longer `pending` (an `uploads.Upload`)."""
    from slipway import uploads

    def settled() -> Any:
        upload = uploads.load(UUID(upload_id))
        return upload if upload.state != "pending" else None

    return wait_for(settled, timeout=timeout, what=f"upload {upload_id} to settle")


# Chromium as the browser tests start it (viewer, ops page, upload page): no sandbox as
# root, and no background traffic on this machine's closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium, or a failure that says how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("this test needs Chromium: apt-get install chromium (make system-deps)")
    return found
