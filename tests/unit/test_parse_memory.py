"""Parse memory stays bounded for hostile telemetry: a GPX of nothing but waypoints, a CSV
of one endless line. Each is parsed in a process of its own, which reports its peak RSS
(VmHWM of /proc/self/status: getrusage's ru_maxrss would include the RSS of the pytest
process it was forked from) after the imports and at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import ROOT, MiB

# Parses the file the way the parse job does (telemetry.parse.batches → Parquet) and
# prints the outcome and the peak RSS in KiB, before and after parsing.
CHILD = """
import json, sys
from slipway.errors import SlipwayError
from slipway.telemetry import parse

def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before, outcome = peak(), {}
try:
    with open(sys.argv[1], "rb") as stream:
        outcome["rows"] = parse.write_parquet(parse.batches(stream), sys.argv[2]).rows
except SlipwayError as exc:
    outcome["code"] = exc.code.value
print(json.dumps(outcome | {"before_kib": before, "after_kib": peak()}))
"""
GROWTH_LIMIT_MIB = 100  # the parse's own memory, over the imports' (~130 MiB)
PEAK_LIMIT_MIB = 300  # and the whole process's


def parse_in_child(source: Path, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(tmp_path / "out.parquet")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["growth_mib"] = (outcome["after_kib"] - outcome["before_kib"]) / 1024
    assert outcome["after_kib"] < PEAK_LIMIT_MIB * 1024, outcome
    return outcome


def test_a_gpx_full_of_waypoints_parses_in_bounded_memory(tmp_path: Path) -> None:
    waypoint = (
        '<wpt lat="52.{i:06d}" lon="4.35"><ele>1.5</ele><time>2026-05-01T09:30:00Z</time>'
        "<name>WP {i}</name><desc>a waypoint, ignored by the parser, and freed</desc>"
        "<extensions><x:note>n</x:note></extensions></wpt>\n"
    )
    track = "".join(
        f'<trkpt lat="52.1" lon="4.3"><time>2026-05-01T09:30:{s:02d}Z</time></trkpt>'
        for s in range(10)
    )
    source = tmp_path / "waypoints.gpx"
    with source.open("w") as f:
        f.write('<?xml version="1.0"?>\n<gpx version="1.1" xmlns:x="urn:x">\n<metadata/>\n')
        for block in range(220):
            f.write("".join(waypoint.format(i=block * 1000 + i) for i in range(1000)))
        f.write(f"<trk><trkseg>{track}</trkseg></trk>\n</gpx>\n")
    assert source.stat().st_size > 44 * 10**6
    outcome = parse_in_child(source, tmp_path)
    assert outcome.get("rows") == 10, outcome
    assert outcome["growth_mib"] < GROWTH_LIMIT_MIB, outcome


def test_a_csv_line_of_256_mib_fails_with_a_code_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "long-line.csv"
    with source.open("wb") as f:
        f.write(b"time,lat,lon\n2026-05-01T09:30:00Z,52.1,4.3\n2026-05-01T09:30:01Z,52.1,")
        block = b"4" * MiB
        for _ in range(256):
            f.write(block)
        f.write(b"\n2026-05-01T09:30:02Z,52.1,4.3\n")
    outcome = parse_in_child(source, tmp_path)
    assert outcome.get("code") == "CSV_LINE_TOO_LONG", outcome
    assert outcome["growth_mib"] < GROWTH_LIMIT_MIB, outcome
