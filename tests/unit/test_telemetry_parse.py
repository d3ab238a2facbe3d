"""Telemetry CSV/GPX → canonical gnss_pvt Parquet: every fixture and its outcome."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slipway.errors import Code, SlipwayError
from slipway.telemetry import csv_reader, gpx_reader, parse
from slipway.telemetry.schema import FILE_SCHEMA, normalise
from tests.support import FIXTURES

TELEMETRY = FIXTURES / "telemetry"
START = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def run(name: str, out: Path) -> parse.Written:
    with (TELEMETRY / name).open("rb") as stream:
        return parse.write_parquet(parse.batches(stream), str(out))


@pytest.mark.parametrize(
    ("name", "rows", "end", "has_alt", "has_speed"),
    [
        ("sample_gnss_10hz.csv", 600, "2026-05-01T09:30:59.900+00:00", True, True),
        ("sample_track.gpx", 100, "2026-05-01T09:30:59.400+00:00", True, True),
        ("track_gpx10.gpx", 10, "2026-05-01T09:30:00.900+00:00", False, True),
        ("epoch_ms_semicolon_bom.csv", 50, "2026-05-01T09:30:04.900+00:00", True, False),
        ("offsets_tab.csv", 30, "2026-05-01T09:30:02.900+00:00", False, False),
        ("epoch_seconds_unsorted.csv", 40, "2026-05-01T09:30:03.900+00:00", False, True),
    ],
)
def test_valid_inputs_become_sorted_canonical_parquet(
    tmp_path: Path, name: str, rows: int, end: str, has_alt: bool, has_speed: bool
) -> None:
    out = tmp_path / "out.parquet"
    written = run(name, out)
    assert (written.rows, written.start, written.end) == (rows, START, datetime.fromisoformat(end))
    table = pq.read_table(out)
    assert table.schema.equals(FILE_SCHEMA)
    assert table.num_rows == rows
    times = table.column("time").to_pylist()
    assert times == sorted(times) and times[0] == START
    assert (table.column("alt").null_count < rows) == has_alt
    assert (table.column("speed").null_count < rows) == has_speed
    assert all(-90 <= v <= 90 for v in table.column("lat").to_pylist())


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("csv_no_time.csv", Code.CSV_NO_TIME_COLUMN),
        ("csv_no_position.csv", Code.CSV_NO_POSITION_COLUMNS),
        ("bad_value.csv", Code.CSV_BAD_VALUE),
        ("out_of_range.csv", Code.CSV_BAD_VALUE),
        ("header_only.csv", Code.EMPTY_FILE),
        ("blank.csv", Code.EMPTY_FILE),
        ("gpx_malformed.gpx", Code.GPX_MALFORMED),
        ("gpx_billion_laughs.gpx", Code.GPX_MALFORMED),
        ("gpx_no_time.gpx", Code.GPX_NO_TIMES),
        ("unsupported.bin", Code.UNSUPPORTED_FORMAT),
    ],
)
def test_bad_inputs_fail_with_their_stable_code(tmp_path: Path, name: str, code: Code) -> None:
    started = time.monotonic()
    with pytest.raises(SlipwayError) as caught:
        run(name, tmp_path / "out.parquet")
    assert caught.value.code == code
    assert caught.value.permanent, "bad input is never retried"
    assert time.monotonic() - started < 2, "fails fast (no entity expansion, no retries)"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Latitude (deg)", "latitude"),
        ("Time UTC", "time_utc"),
        (" LON ", "lon"),
        ('"speed [m/s]"', "speed"),
        ("date-time", "date_time"),
    ],
)
def test_header_spellings_normalise(header: str, expected: str) -> None:
    assert normalise(header) == expected


def test_large_files_stream_in_row_groups(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    with source.open("w") as f:
        f.write("time,lat,lon\n")
        for i in range(300_000):
            f.write(f"{1_700_000_000 + i / 10:.1f},{52 + i * 1e-7:.7f},4.35\n")
    with source.open("rb") as stream:
        written = parse.write_parquet(parse.batches(stream), str(tmp_path / "out.parquet"))
    assert written.rows == 300_000
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert meta.num_rows == 300_000
    assert written.start == datetime.fromtimestamp(1_700_000_000, UTC)
    assert pa.types.is_timestamp(meta.schema.to_arrow_schema().field("time").type)


@pytest.mark.parametrize("offset", [0, 1, 999, 4095, 4096, 10_000])
@pytest.mark.parametrize(("length", "refused"), [(4096, False), (4097, True), (30_000, True)])
def test_a_line_over_the_limit_is_refused_wherever_it_lies(
    offset: int, length: int, refused: bool
) -> None:
    chunk = b"\n" * offset + b"y" * length + b"\n" + b"short\n" * 3_000
    if not refused:
        csv_reader.check_lines(chunk, limit=4096)
        return
    with pytest.raises(SlipwayError) as caught:
        csv_reader.check_lines(chunk, limit=4096)
    assert caught.value.code == Code.CSV_LINE_TOO_LONG


def test_an_unfinished_line_is_refused_once_it_is_over_the_limit() -> None:
    chunks = csv_reader.line_chunks(b"a,b\n", io.BytesIO(b"z" * 100_000), size=1000, limit=4096)
    assert next(chunks) == b"a,b\n"
    with pytest.raises(SlipwayError) as caught:
        next(chunks)
    assert caught.value.code == Code.CSV_LINE_TOO_LONG


def gpx(extra: bytes) -> bytes:
    """A valid one-point GPX with `extra` inside."""
    return (
        b'<gpx version="1.1">' + extra + b'<trk><trkseg><trkpt lat="52" lon="4">'
        b"<time>2026-05-01T09:30:00Z</time></trkpt></trkseg></trk></gpx>"
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"time," + b"x" * 70_000 + b",lat,lon\n", Code.CSV_LINE_TOO_LONG),  # a header
        (
            b"time,lat,lon\n2026-05-01T09:30:00Z,52,"
            + b"4" * (csv_reader.MAX_LINE_BYTES + 1)
            + b"\n",
            Code.CSV_LINE_TOO_LONG,
        ),
        (gpx(b"<e>" * gpx_reader.MAX_DEPTH + b"</e>" * gpx_reader.MAX_DEPTH), Code.GPX_MALFORMED),
        (
            gpx(
                b'<wpt lat="1" lon="2"><desc>'
                + b"d" * (gpx_reader.MAX_TOKEN_BYTES + 64 * 1024)
                + b"</desc></wpt>"
            ),
            Code.GPX_MALFORMED,
        ),
    ],
    ids=["csv-header", "csv-row", "gpx-nesting", "gpx-text"],
)
def test_oversized_lines_and_elements_fail_with_a_code(
    tmp_path: Path, data: bytes, code: Code
) -> None:
    with pytest.raises(SlipwayError) as caught:
        parse.write_parquet(parse.batches(io.BytesIO(data)), str(tmp_path / "out.parquet"))
    assert caught.value.code == code and caught.value.permanent


def test_track_points_keep_their_fields_while_the_rest_is_dropped(tmp_path: Path) -> None:
    gpx = (
        b'<gpx version="1.1" xmlns:g="urn:g"><wpt lat="1" lon="2"><time>2020-01-01T00:00:00Z'
        b'</time></wpt><trk><trkseg><trkpt lat="52.5" lon="4.5"><time> </time>'
        b"<time>2026-05-01T09:30:00Z</time><extensions><g:x><g:speed>3.5</g:speed></g:x>"
        b"</extensions><ele>7</ele></trkpt></trkseg></trk></gpx>"
    )
    out = tmp_path / "out.parquet"
    written = parse.write_parquet(parse.batches(io.BytesIO(gpx)), str(out))
    assert (written.rows, written.start) == (1, START)
    assert pq.read_table(out).drop_columns("geometry").to_pylist()[0] == {
        "time": START,
        "lat": 52.5,
        "lon": 4.5,
        "alt": 7.0,
        "speed": 3.5,
    }
