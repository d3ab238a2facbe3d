"""Telemetry over the parser's limits fails its session with a stable code, through the
whole stack (upload → verify → parse job), once: never an out-of-memory retry loop."""

from __future__ import annotations

from collections.abc import Callable

from slipway.client import Client
from slipway.telemetry import csv_reader
from tests.support import MiB


def test_a_csv_with_an_endless_line_fails_its_session_with_csv_line_too_long(
    client_for: Callable[..., Client],
) -> None:
    bob = client_for("bob")
    data = (
        b"time,lat,lon\n2026-05-01T09:30:00Z,52.1,4.3\n2026-05-01T09:30:01Z,52.1,"
        + b"4" * (3 * MiB)
        + b"\n2026-05-01T09:30:02Z,52.1,4.3\n"
    )
    assert 3 * MiB > csv_reader.MAX_LINE_BYTES
    created = bob.upload_bytes("telemetry", "long-line.csv", data, "text/csv")
    assert bob.wait_for_upload(created["uploadId"])["state"] == "ready"
    session_id = bob.finalise(created["uploadId"])["sessionId"]
    session = bob.wait_until(
        lambda: bob.session_of(session_id), lambda s: s["status"] != "processing", timeout=120
    )
    assert session["status"] == "failed" and session["streams"] == [], session
    assert session["failure"]["code"] == "CSV_LINE_TOO_LONG", session
    upload = bob.upload(created["uploadId"])
    (job,) = [bob.job(j["jobId"]) for j in upload["jobs"] if j["type"] == "parse"]
    assert (job["status"], job["attemptCount"]) == ("FAILED", 1), job
    assert job["error"]["code"] == "CSV_LINE_TOO_LONG"
