"""The 30 GPX files from real tools that gpxpy's source package ships, against gpxpy.

Every file gpxpy reads with timed track points gives the same rows (time to the second,
lat, lon, elevation) and time range; every other one fails with the code that says why.
The files are downloaded into the ignored cache (.slipway/cache/) on first use, never
committed: the sdist of the gpxpy pinned in requirements-dev.txt.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import gpxpy
import pyarrow.parquet as pq
import pytest

from slipway.errors import Code, SlipwayError
from slipway.telemetry import parse

ROOT = Path(__file__).resolve().parents[2]
VERSION = version("gpxpy")
CACHE = ROOT / ".slipway" / "cache" / f"gpxpy-{VERSION}"

# the files gpxpy reads with timed track points: same rows, same time range
AGREEING = {
    "Mojstrovka.gpx",  # GPSBabel: seven-digit fractions of a second
    "around-visnjan-with-car.gpx",
    "cerknicko-jezero-no-creator.gpx",
    "cerknicko-jezero-with-elevations-zero.gpx",
    "cerknicko-jezero-without-elevations.gpx",
    "cerknicko-jezero.gpx",
    "cerknicko-without-times.gpx",  # 5 of 296 points have a time
    "first_and_last_elevation.gpx",
    "gpx-with-node-with-comments.gpx",
    "gpx1.0_with_all_fields.gpx",
    "gpx1.1_with_all_fields.gpx",
    "korita-zbevnica.gpx",
    "track-with-empty-segment.gpx",
    "track-with-less-sec-time.gpx",
    "track_with_speed.gpx",
    "validation_gpx10.gpx",
    "validation_gpx11.gpx",
}
# the files gpxpy reads without a timed track point, and why (a code of our own)
FAILING = {
    "route.gpx": Code.GPX_ROUTE_ONLY,  # 55 route points: a plan, not a recording
    "track-with-extremes.gpx": Code.GPX_NO_TIMES,
    "track-with-small-floats.gpx": Code.GPX_NO_TIMES,
    "track_with_dilution_errors.gpx": Code.GPX_NO_TIMES,
    # waypoints or metadata only
    **dict.fromkeys(
        [
            "custom_schema_locations.gpx",
            "default_schema_locations.gpx",
            "gpx1.1_with_extensions.gpx",
            "gpx1.1_with_extensions_without_namespaces.gpx",
            "gpx_with_garmin_extension.gpx",
            "unicode.gpx",
            "unicode2.gpx",
            "unicode_with_bom.gpx",
            "unicode_with_bom_noencoding.gpx",
        ],
        Code.GPX_NO_POINTS,
    ),
}


def corpus() -> Path:
    """gpxpy's test_files/, fetched once with pip into the cache."""
    files = CACHE / "test_files"
    if files.is_dir():
        return files
    CACHE.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"gpxpy=={VERSION}", "-d", str(CACHE)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    archives = list(CACHE.glob(f"gpxpy-{VERSION}.tar.gz"))
    if fetched.returncode or not archives:
        pytest.fail(
            f"gpxpy {VERSION}'s source package (its test_files/) is missing: `pip download "
            f"--no-binary :all: gpxpy=={VERSION}` failed: {fetched.stderr[-500:]}"
        )
    with tarfile.open(archives[0]) as tar:
        prefix = f"gpxpy-{VERSION}/test_files/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()]
        for member in members:
            member.name = member.name.removeprefix(f"gpxpy-{VERSION}/")
        tar.extractall(CACHE, members=members, filter="data")
    return files


def reference(path: Path) -> list[tuple[datetime, float, float, float | None]]:
    """gpxpy's timed track points, as rows (naive times are UTC, as ours)."""
    with path.open(encoding="utf-8-sig") as f:
        gpx = gpxpy.parse(f)
    rows = []
    for track in gpx.tracks:
        for segment in track.segments:
            for p in segment.points:
                if p.time is not None:
                    when = p.time if p.time.tzinfo else p.time.replace(tzinfo=UTC)
                    rows.append((when.astimezone(UTC), p.latitude, p.longitude, p.elevation))
    return rows


def test_the_corpus_is_all_there_and_each_file_is_named_here() -> None:
    names = {p.name for p in corpus().glob("*.gpx")}
    assert len(names) == 30
    assert names == AGREEING | set(FAILING)


@pytest.mark.parametrize("name", sorted([*AGREEING, *FAILING]))
def test_each_file_agrees_with_gpxpy_or_fails_with_its_code(tmp_path: Path, name: str) -> None:
    path = corpus() / name
    expected = reference(path)
    if name in FAILING:
        assert expected == []
        with path.open("rb") as stream, pytest.raises(SlipwayError) as caught:
            parse.write_parquet(parse.batches(stream), str(tmp_path / "out.parquet"))
        assert caught.value.code == FAILING[name], caught.value.message
        return
    assert expected, f"{name}: gpxpy reads no timed track point, yet it is not in FAILING"
    with path.open("rb") as stream:
        written = parse.write_parquet(parse.batches(stream), str(tmp_path / "out.parquet"))
    table = pq.read_table(tmp_path / "out.parquet")
    ours = [
        (r["time"].replace(microsecond=0), r["lat"], r["lon"], r["alt"]) for r in table.to_pylist()
    ]
    seconds = [(t.replace(microsecond=0), *rest) for t, *rest in expected]
    assert sorted(ours) == sorted(seconds)  # the same rows (ours are in time order)
    times = [t for t, *_ in expected]
    assert (written.rows, written.start, written.end) == (len(expected), min(times), max(times))
