"""The log explains the tables: replay after a mixed workload equals the live projections,
and a tampered row is reported (by the library and by `slipway verify`)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import pyvips
from psycopg import sql

from slipway import jobs
from slipway.client import ApiError, Client
from slipway.projections import TABLES, replay
from slipway.projections import record as record_events
from slipway.projections.projectors import LIVENESS
from tests.support import FIXTURES, run_cli


def mixed_workload(client: Client) -> None:
    """Every kind of state change, through the public API where there is one."""
    image = pyvips.Image.gaussnoise(600, 400).cast("uchar").jpegsave_buffer()
    slide = client.upload_bytes("slide", "s.jpg", image, "image/jpeg")["uploadId"]
    broken = client.upload_bytes("slide", "b.jpg", b"not an image at all")["uploadId"]
    good = (FIXTURES / "telemetry" / "sample_track.gpx").read_bytes()
    bad = (FIXTURES / "telemetry" / "csv_no_time.csv").read_bytes()
    csv_ok = client.upload_bytes("telemetry", "t.gpx", good)["uploadId"]
    csv_bad = client.upload_bytes("telemetry", "t.csv", bad)["uploadId"]
    scan, tile = str(uuid.uuid4()), str(uuid.uuid4())
    client.session.put(
        f"{client.base_url}/v1/line-scans/{scan}/tiles/{tile}",
        data=b"line",
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    for upload_id in (slide, broken):
        client.wait_until(
            lambda u=upload_id: client.slide(u),  # type: ignore[misc]
            lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
            timeout=120,
        )
    for upload_id in (csv_ok, csv_bad):
        client.wait_for_upload(upload_id)
        session = client.finalise(upload_id)["sessionId"]
        client.wait_until(
            lambda s=session: client.session_of(s),  # type: ignore[misc]
            lambda s: s["status"] != "processing",
            timeout=120,
        )


def diff_tables(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    """Rows that differ between the live tables and the rebuilt ones, every column but
    the liveness ones (heartbeats change those without an event: projectors.LIVENESS)."""
    out = {}
    for table in TABLES:
        live, rebuilt = sql.Identifier("public", table), sql.Identifier(schema, table)
        described = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(live)).description
        names = [c.name for c in described or () if c.name not in LIVENESS.get(table, ())]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        query = sql.SQL(
            "SELECT (SELECT count(*) FROM ({a} EXCEPT ALL {b}) x) + "
            "(SELECT count(*) FROM ({b} EXCEPT ALL {a}) y) AS n"
        ).format(
            a=sql.SQL("SELECT {} FROM {}").format(columns, live),
            b=sql.SQL("SELECT {} FROM {}").format(columns, rebuilt),
        )
        row = conn.execute(query).fetchone()
        out[table] = int(row["n"])  # type: ignore[index]
    return out


def verify_cli(stack: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": stack["DATABASE_URL"], "SLIPWAY_ENV_FILE": "/nonexistent"}
    return run_cli("verify", env=env)


def test_replay_equals_the_live_tables_and_tampering_is_reported(
    stack: dict[str, str],
    conn: psycopg.Connection[Any],
    client_for: Callable[..., Client],
) -> None:
    mixed_workload(client_for("replayer"))
    with pytest.raises(ApiError):  # a cancelled job too
        client_for("replayer").call("POST", f"/v1/jobs/{uuid.uuid4()}/cancel")
    from slipway import db

    with db.transaction() as c:
        queued = jobs.queued("test-never-run", "replayer", None, {})
        record_events(c, "test", queued)
    assert queued.subject_id is not None
    jobs.cancel(queued.subject_id, "replayer")

    stats, differences = replay.differences(conn)
    assert differences == [], differences[:3]
    assert stats.events > 20 and stats.rows["uploads"] >= 4 and stats.rows["line_scan_tiles"] >= 1

    rebuilt = replay.rebuild(conn, "replay_check")
    assert rebuilt.events >= stats.events
    assert diff_tables(conn, "replay_check") == dict.fromkeys(TABLES, 0)

    ok = verify_cli(stack)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "explains every row" in ok.stdout

    victim = conn.execute("SELECT id, filename FROM uploads ORDER BY created_at LIMIT 1").fetchone()
    assert victim is not None
    conn.execute("UPDATE uploads SET filename = 'tampered.bin' WHERE id = %s", (victim["id"],))
    try:
        _, found = replay.differences(conn)
        kinds = {(d.table, d.kind) for d in found}
        assert kinds == {("uploads", "unexplained"), ("uploads", "missing")}
        assert any(d.row["filename"] == "tampered.bin" for d in found)
        broken = verify_cli(stack)
        assert broken.returncode == 1
        assert "uploads unexplained" in broken.stdout
    finally:
        conn.execute(
            "UPDATE uploads SET filename = %s WHERE id = %s", (victim["filename"], victim["id"])
        )
    conn.execute("DROP SCHEMA replay_check CASCADE")
