"""FIT, TCX and NMEA 0183 → canonical gnss_pvt Parquet: rows, time range, codes."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from slipway.errors import Code, SlipwayError
from slipway.telemetry import channels, parse
from slipway.telemetry.schema import FILE_SCHEMA
from tests.fixtures.telemetry import devices
from tests.fixtures.telemetry.make_fixtures import START

PTS = devices.points(120)  # two minutes at 1 Hz
END = START + timedelta(seconds=119)


def run(data: bytes, out: Path) -> parse.Written:
    return parse.write_parquet(parse.batches(io.BytesIO(data)), str(out))


def fails(data: bytes, tmp_path: Path) -> SlipwayError:
    with pytest.raises(SlipwayError) as caught:
        run(data, tmp_path / "out.parquet")
    assert caught.value.permanent
    return caught.value


@pytest.mark.parametrize(
    ("name", "make", "tolerance"),
    [
        # FIT stores semicircles and altitude in 0.2 m steps; NMEA minutes to 4 decimals
        ("fit", lambda: devices.fit(PTS, unpositioned=3), (1e-6, 0.2)),
        ("tcx", lambda: devices.tcx(PTS, unpositioned=3), (0, 0)),
        ("nmea", lambda: devices.nmea(PTS), (2e-6, 0)),
    ],
)
def test_a_device_file_becomes_the_same_rows_and_time_range(
    tmp_path: Path, name: str, make: Callable[[], bytes], tolerance: tuple[float, float]
) -> None:
    data = make()
    assert parse.detect(data[:4096]) == name
    written = run(data, tmp_path / "out.parquet")
    assert (written.rows, written.start, written.end) == (len(PTS), START, END)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.equals(FILE_SCHEMA)
    degrees, metres = tolerance
    for row, (t, lat, lon, alt, speed) in zip(table.to_pylist(), PTS, strict=True):
        assert row["time"] == t
        assert row["lat"] == pytest.approx(lat, abs=degrees)
        assert row["lon"] == pytest.approx(lon, abs=degrees)
        assert row["alt"] == pytest.approx(alt, abs=metres + 1e-9)
        assert row["speed"] == pytest.approx(speed, abs=1e-3)


def test_nmea_epochs_merge_gga_and_rmc_and_cross_midnight(tmp_path: Path) -> None:
    late = [
        (START.replace(hour=23, minute=59, second=58) + timedelta(seconds=i), *p[1:])
        for i, p in enumerate(PTS[:4])
    ]
    text = devices.nmea(late).decode().splitlines(keepends=True)
    # the RMC of the epoch after midnight is lost: its GGA takes the next day
    kept = [line for line in text if not line.startswith("$GPRMC,000000.00")]
    kept.insert(3, "$GPGGA,235959.00,garbage*00\r\n")  # a damaged line is skipped
    written = run("".join(kept).encode(), tmp_path / "out.parquet")
    assert written.rows == 4
    assert (written.start, written.end) == (late[0][0], late[3][0])
    times = pq.read_table(tmp_path / "out.parquet").column("time").to_pylist()
    assert times == [p[0] for p in late]


def _damaged_fit() -> bytes:
    data = bytearray(devices.fit(PTS))
    data[len(data) // 2] ^= 0xFF  # a flipped byte: the CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_damaged_fit, Code.FIT_MALFORMED),
        (lambda: devices.fit(PTS)[:-100], Code.FIT_MALFORMED),  # cut short
        (lambda: devices.fit(PTS)[:-2] + b"\x00\x00", Code.FIT_MALFORMED),  # its CRC zeroed
        (lambda: devices.fit(PTS, positions=False), Code.FIT_NO_POSITIONS),  # indoor
        (lambda: devices.tcx(PTS)[:-60], Code.TCX_MALFORMED),
        (
            lambda: (
                devices.tcx(PTS[:1], unpositioned=5)
                .replace(b"<Position>", b"<X>")
                .replace(b"</Position>", b"</X>")
                .replace(b"LatitudeDegrees", b"Lat")
            ),
            Code.TCX_NO_POINTS,
        ),
        (lambda: devices.nmea(PTS, fix=False), Code.NMEA_NO_FIX),
        (lambda: devices.nmea(PTS, rmc=False), Code.NMEA_NO_DATE),
        (lambda: devices.nmea(PTS).replace(b"*", b"*F"), Code.NMEA_MALFORMED),  # checksums
    ],
    ids=[
        "fit-crc",
        "fit-truncated",
        "fit-crc-zeroed",
        "fit-indoor",
        "tcx-truncated",
        "tcx-no-position",
        "nmea-no-fix",
        "nmea-gga-only",
        "nmea-bad-checksums",
    ],
)
def test_a_damaged_device_file_fails_with_its_code(
    tmp_path: Path, make: Callable[[], bytes], code: Code
) -> None:
    assert fails(make(), tmp_path).code == code


@pytest.mark.parametrize(
    ("make", "temperature"),
    [
        (lambda: devices.fit(PTS, unpositioned=3), 18.0),
        (lambda: devices.tcx(PTS, unpositioned=3), None),  # TCX records no temperature
    ],
    ids=["fit", "tcx"],
)
def test_heart_rate_cadence_power_and_temperature_become_the_sensors_stream(
    tmp_path: Path, make: Callable[[], bytes], temperature: float | None
) -> None:
    sensors = channels.Writer(str(tmp_path / "sensors.parquet"))
    written = parse.write_parquet(parse.batches(io.BytesIO(make()), sensors), str(tmp_path / "g"))
    sensors.close()
    assert written.rows == len(PTS)
    table = pq.read_table(tmp_path / "sensors.parquet")
    assert table.schema.equals(channels.SCHEMA)
    assert sensors.rows == table.num_rows == len(PTS) + 3  # the unpositioned ones too
    rows = table.to_pylist()
    assert [r["time"] for r in rows[3:]] == [p[0] for p in PTS]
    assert rows[0]["time"] == START - timedelta(seconds=3) and rows[0]["heart_rate"] == 90
    assert [r["heart_rate"] for r in rows[3:]] == [120.0 + i % 40 for i in range(len(PTS))]
    assert [r["power"] for r in rows[3:]] == [200.0 + i % 50 for i in range(len(PTS))]
    assert {r["cadence"] for r in rows[3:]} == {85.0}
    assert {r["temperature"] for r in rows[3:]} == {temperature}


def test_gpx_track_point_extensions_become_the_sensors_stream(tmp_path: Path) -> None:
    gpx = (
        b'<gpx version="1.1" xmlns:x="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">'
        b'<trk><trkseg><trkpt lat="52" lon="4"><time>2026-05-01T09:30:00Z</time><extensions>'
        b"<x:TrackPointExtension><x:hr>131</x:hr><x:cad>90</x:cad><x:atemp>21.5</x:atemp>"
        b"</x:TrackPointExtension><power>250</power></extensions></trkpt>"
        b'<trkpt lat="52" lon="4"><time>2026-05-01T09:30:01Z</time></trkpt></trkseg></trk></gpx>'
    )
    sensors = channels.Writer(str(tmp_path / "sensors.parquet"))
    written = parse.write_parquet(parse.batches(io.BytesIO(gpx), sensors), str(tmp_path / "g"))
    sensors.close()
    assert written.rows == 2
    assert pq.read_table(tmp_path / "sensors.parquet").to_pylist() == [
        {"time": START, "heart_rate": 131.0, "cadence": 90.0, "power": 250.0, "temperature": 21.5}
    ]


def test_a_csv_or_nmea_file_has_no_sensors_stream(tmp_path: Path) -> None:
    for data in (devices.nmea(PTS), b"time,lat,lon\n2026-05-01T09:30:00Z,52,4\n"):
        sensors = channels.Writer(str(tmp_path / "sensors.parquet"))
        parse.write_parquet(parse.batches(io.BytesIO(data), sensors), str(tmp_path / "g"))
        sensors.close()
        assert sensors.rows == 0 and not (tmp_path / "sensors.parquet").exists()
