"""Device files through the whole stack (upload → verify → parse job): a FIT, a TCX and
an NMEA log each become a ready session with their rows and time range; a damaged one
fails its session with its code on the first attempt (bad input is never retried)."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import requests

from slipway.client import Client
from slipway.telemetry import geoparquet
from tests.fixtures.telemetry import devices
from tests.fixtures.telemetry.make_fixtures import START

PTS = devices.points(90)


def _settle(owner: Client, name: str, data: bytes) -> tuple[str, dict[str, Any]]:
    created = owner.upload_bytes("telemetry", name, data, "application/octet-stream")
    assert owner.wait_for_upload(created["uploadId"])["state"] == "ready"
    session_id = owner.finalise(created["uploadId"])["sessionId"]
    session = owner.wait_until(
        lambda: owner.session_of(session_id), lambda s: s["status"] != "processing", timeout=120
    )
    return created["uploadId"], session


def _table(stream: dict[str, Any]) -> Any:
    return pq.read_table(io.BytesIO(requests.get(stream["parquetUrl"], timeout=30).content))


def test_fit_tcx_and_nmea_become_ready_sessions_and_damaged_ones_fail_once(
    client_for: Callable[..., Client],
) -> None:
    owner = client_for("device-owner")
    damaged_fit = bytearray(devices.fit(PTS))
    damaged_fit[len(damaged_fit) // 2] ^= 0xFF
    files = {
        "ride.fit": devices.fit(PTS, unpositioned=2),
        "ride.tcx": devices.tcx(PTS, unpositioned=2),
        "ride.nmea": devices.nmea(PTS),
    }
    for name, data in files.items():
        _, session = _settle(owner, name, data)
        assert session["status"] == "ready" and "failure" not in session, (name, session)
        assert (session["startTimeUtc"], session["endTimeUtc"]) == (
            "2026-05-01T09:30:00Z",
            (START + timedelta(seconds=89)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ), name
        streams = {s["name"]: s for s in session["streams"]}
        # FIT and TCX record heart rate, cadence and power too (the 2 unpositioned included)
        sensors = name != "ride.nmea"
        assert sorted(streams) == ["gnss_pvt", "sensors"] if sensors else ["gnss_pvt"], name
        assert streams["gnss_pvt"]["rows"] == len(PTS), name
        table = _table(streams["gnss_pvt"])
        assert table.column("time").to_pylist() == [p[0] for p in PTS], name
        if sensors:
            assert streams["sensors"]["rows"] == len(PTS) + 2
            table = _table(streams["sensors"])
            assert table.column("heart_rate").to_pylist()[:3] == [90, 90, 120], name

    for name, data, code in [
        ("damaged.fit", bytes(damaged_fit), "FIT_MALFORMED"),
        ("searching.nmea", devices.nmea(PTS, fix=False), "NMEA_NO_FIX"),
        ("cut.tcx", devices.tcx(PTS)[:-60], "TCX_MALFORMED"),
    ]:
        upload_id, session = _settle(owner, name, data)
        assert session["status"] == "failed" and session["streams"] == [], (name, session)
        assert session["failure"]["code"] == code, (name, session)
        upload = owner.upload(upload_id)
        (job,) = [owner.job(j["jobId"]) for j in upload["jobs"] if j["type"] == "parse"]
        assert (job["status"], job["attemptCount"]) == ("FAILED", 1), (name, job)
        assert job["error"]["code"] == code


def test_an_analyst_queries_a_sessions_parquet_with_duckdb(
    client_for: Callable[..., Client], tmp_path: Path
) -> None:
    """Both streams of a FIT ride, as downloaded from their URLs, joined on time in SQL."""
    owner = client_for("device-owner")
    _, session = _settle(owner, "query.fit", devices.fit(PTS, unpositioned=2))
    assert session["status"] == "ready", session
    for stream in session["streams"]:
        body = requests.get(stream["parquetUrl"], timeout=30).content
        (tmp_path / f"{stream['name']}.parquet").write_bytes(body)
    db = duckdb.connect()
    summary = db.execute(
        f"SELECT count(*), epoch_us(min(time)), epoch_us(max(time)), round(max(lat), 4) "
        f"FROM read_parquet('{tmp_path / 'gnss_pvt.parquet'}')"
    ).fetchone()
    assert summary is not None
    rows, first, last, north = summary
    micros = [round(p[0].timestamp() * 1_000_000) for p in (PTS[0], PTS[-1])]
    assert (rows, [first, last]) == (len(PTS), micros)  # (as numbers: no pytz needed)
    assert north == round(max(p[1] for p in PTS), 4)
    joined = db.execute(
        f"SELECT count(*), max(s.heart_rate), sum(s.power) "
        f"FROM read_parquet('{tmp_path / 'gnss_pvt.parquet'}') g "
        f"JOIN read_parquet('{tmp_path / 'sensors.parquet'}') s USING (time)"
    ).fetchone()
    assert joined == (
        len(PTS),
        max(120 + i % 40 for i in range(len(PTS))),
        sum(200 + i % 50 for i in range(len(PTS))),
    )


def test_a_sessions_gnss_pvt_is_geoparquet_that_duckdb_reads(
    client_for: Callable[..., Client], tmp_path: Path
) -> None:
    """The gnss_pvt object, as downloaded: valid `geo` metadata with the bbox of all its
    rows, and a WKB point per row that DuckDB reads as GEOMETRY."""
    owner = client_for("device-owner")
    _, session = _settle(owner, "geo.tcx", devices.tcx(PTS, unpositioned=2))
    assert session["status"] == "ready", session
    (stream,) = [s for s in session["streams"] if s["name"] == "gnss_pvt"]
    path = tmp_path / "gnss_pvt.parquet"
    path.write_bytes(requests.get(stream["parquetUrl"], timeout=30).content)

    table = pq.read_table(path)
    assert table.schema.names == ["time", "lat", "lon", "alt", "speed", "geometry"]
    geo = json.loads(pq.ParquetFile(path).metadata.metadata[b"geo"])
    assert geoparquet.problems(geo) == []
    assert geo["primary_column"] == "geometry"
    lons, lats = [p[2] for p in PTS], [p[1] for p in PTS]  # TCX keeps the exact degrees
    assert geo["columns"]["geometry"]["bbox"] == [min(lons), min(lats), max(lons), max(lats)]
    wkb = table.column("geometry").to_pylist()
    assert [struct.unpack("<BIdd", w) for w in wkb] == [(1, 1, p[2], p[1]) for p in PTS]

    db = duckdb.connect()
    rows = db.execute(
        f"SELECT typeof(geometry), ST_AsText(geometry), geometry::BLOB, lon, lat "
        f"FROM read_parquet('{path}') ORDER BY time"
    ).fetchall()
    assert len(rows) == len(PTS)
    for (kind, text, blob, lon, lat), (_, p_lat, p_lon, _, _) in zip(rows, PTS, strict=True):
        assert kind == "GEOMETRY('OGC:CRS84')"
        assert text == f"POINT ({p_lon!r} {p_lat!r})" and (lon, lat) == (p_lon, p_lat)
        assert struct.unpack("<BIdd", blob) == (1, 1, p_lon, p_lat)
