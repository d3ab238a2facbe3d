"""GPX 1.0 / 1.1 tracks → batches of the canonical schema, streamed (xml_points).

Track points (`trkpt`) with a `<time>` become rows (Garmin's TrackPointExtension `hr`,
`cad`, `atemp` and a `power` extension go to the `sensors` stream); routes (`rtept`, a planned path
with no times as a rule) and waypoints are not a recording and are skipped. A file that
gives no row fails with the code that says why: points without times, only a route, or
no points at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, channels, xml_points
from slipway.telemetry.xml_points import MAX_DEPTH, MAX_TOKEN_BYTES, Fields, Row, number

__all__ = ["MAX_DEPTH", "MAX_TOKEN_BYTES", "read"]


def _row(name: str, attrib: dict[str, str], point: Fields) -> Row | None:
    when = point.get("time")
    if name != "trkpt" or when is None:
        return None
    lat, lon = float(attrib["lat"]), float(attrib["lon"])
    return (when, lat, lon, number(point.get("ele")), number(point.get("speed")))


DIALECT = xml_points.Dialect(
    label="GPX",
    root="gpx",
    points=frozenset({"trkpt", "rtept"}),
    fields=frozenset({"time", "ele", "speed", "hr", "cad", "power", "atemp"}),
    row=_row,
    malformed=Code.GPX_MALFORMED,
    time="time",
    sample=lambda p: (
        number(p.get("hr")),
        number(p.get("cad")),
        number(p.get("power")),
        number(p.get("atemp")),
    ),
)


def read(stream: Readable, sink: channels.Sink = channels.DISCARD) -> Iterator[pa.RecordBatch]:
    tally: Counter[str] = Counter()
    yield from xml_points.batches(stream, DIALECT, tally, sink)
    if tally["rows"]:
        return
    if tally["trkpt"]:
        raise SlipwayError(
            Code.GPX_NO_TIMES, f"none of the {tally['trkpt']} track points has a <time>"
        )
    if tally["rtept"]:
        raise SlipwayError(
            Code.GPX_ROUTE_ONLY,
            f"a route ({tally['rtept']} route points) is a planned path, not a recording: "
            "no track points",
        )
    raise SlipwayError(Code.GPX_NO_POINTS, "no track points (waypoints alone are not a track)")
