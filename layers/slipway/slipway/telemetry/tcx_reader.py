"""Garmin TCX (Training Center XML v2) → batches of the canonical schema (xml_points).

Every `Trackpoint` of every activity, lap and track with a `Time` and a `Position`
becomes a row: `AltitudeMeters` is the altitude, the ActivityExtension's `Speed` (m/s)
the speed. Trackpoints without a position (no fix, an indoor workout) are skipped; heart
rate, cadence and the extension's `Watts` go to the `sensors` stream, positioned or not.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, channels, xml_points
from slipway.telemetry.xml_points import Fields, Row, number

_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?TrainingCenterDatabase[\s/>]")


def is_tcx(head: bytes) -> bool:
    """The root element is TrainingCenterDatabase (it opens within the first bytes)."""
    return _ROOT.search(head) is not None


def _row(name: str, attrib: dict[str, str], point: Fields) -> Row | None:
    when, lat, lon = point.get("Time"), point.get("LatitudeDegrees"), point.get("LongitudeDegrees")
    if when is None or lat is None or lon is None:
        return None
    alt, speed = number(point.get("AltitudeMeters")), number(point.get("Speed"))
    return (when, float(lat), float(lon), alt, speed)


DIALECT = xml_points.Dialect(
    label="TCX",
    root="TrainingCenterDatabase",
    points=frozenset({"Trackpoint"}),
    fields=frozenset(
        {"Time", "LatitudeDegrees", "LongitudeDegrees", "AltitudeMeters", "Speed"}
        | {"Value", "Cadence", "Watts"}  # HeartRateBpm's Value, and the sensors
    ),
    row=_row,
    malformed=Code.TCX_MALFORMED,
    time="Time",
    sample=lambda p: (
        number(p.get("Value")),
        number(p.get("Cadence")),
        number(p.get("Watts")),
        None,
    ),
)


def read(stream: Readable, sink: channels.Sink = channels.DISCARD) -> Iterator[pa.RecordBatch]:
    tally: Counter[str] = Counter()
    yield from xml_points.batches(stream, DIALECT, tally, sink)
    if not tally["rows"]:
        raise SlipwayError(
            Code.TCX_NO_POINTS,
            f"none of the {tally['Trackpoint']} trackpoints has a <Time> and a <Position>",
        )
