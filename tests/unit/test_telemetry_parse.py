"""Telemetry CSV/GPX → canonical gnss_pvt Parquet: every fixture and its outcome."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slipway.errors import Code, SlipwayError
from slipway.telemetry import parse
from slipway.telemetry.schema import SCHEMA, normalise
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
    assert table.schema.equals(SCHEMA)
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
        ("gpx_no_time.gpx", Code.GPX_NO_POINTS),
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
