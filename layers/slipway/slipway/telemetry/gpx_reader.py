"""GPX 1.0 / 1.1 tracks → batches of the canonical schema, streamed.

defusedxml refuses DTDs and entities outright, so a billion-laughs file fails at its
first declaration. Elements are matched by local name (any namespace, any extension).
Memory stays bounded for any input: every element leaves the tree when it ends (track
points, and all that is ignored: waypoints, routes, metadata, extensions), a track
point's `time`, `ele` and `speed` are kept as text until it ends, nesting is limited to
`MAX_DEPTH`, and no single tag or text may exceed `MAX_TOKEN_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

import pyarrow as pa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, timeparse
from slipway.telemetry.schema import SCHEMA

BATCH_POINTS = 65_536
MAX_DEPTH = 64  # gpx/trk/trkseg/trkpt/extensions/… is about 8 deep
MAX_TOKEN_BYTES = 8 * 1024 * 1024  # the input read between two elements' starts or ends
FIELDS = ("time", "ele", "speed")  # what a track point's descendants may tell
Row = tuple[str, float, float, float | None, float | None]


class _Metered:
    """The stream, refusing to give the parser more than MAX_TOKEN_BYTES without it
    reporting an element: a tag or text that long is not GPX, and would be held whole."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.unreported = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.unreported += len(data)
        if self.unreported > MAX_TOKEN_BYTES:
            raise SlipwayError(
                Code.GPX_MALFORMED,
                f"a tag or text longer than {MAX_TOKEN_BYTES // (1024 * 1024)} MiB",
            )
        return data


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _float(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text)


def _batch(rows: list[Row]) -> pa.RecordBatch:
    times, lats, lons, alts, speeds = zip(*rows, strict=True)
    try:
        time = timeparse.from_iso(pa.array(times, pa.string()))
    except pa.ArrowInvalid as exc:
        raise SlipwayError(Code.GPX_MALFORMED, f"a <time> is not ISO 8601: {exc}") from exc
    return pa.RecordBatch.from_arrays(
        [
            time,
            pa.array(lats),
            pa.array(lons),
            pa.array(alts, pa.float64()),
            pa.array(speeds, pa.float64()),
        ],
        schema=SCHEMA,
    )


def read(stream: Readable) -> Iterator[pa.RecordBatch]:
    source = _Metered(stream)
    rows: list[Row] = []
    parents: list[Element] = []  # the open elements, outermost first
    point: dict[str, str | None] | None = None  # the open track point's fields
    points = timed = 0
    try:
        for event, el in iterparse(source, events=("start", "end"), forbid_dtd=True):
            source.unreported = 0
            name = _local(el.tag)
            if event == "start":
                if not parents and name != "gpx":
                    raise SlipwayError(Code.UNSUPPORTED_FORMAT, "XML, but not GPX")
                if len(parents) >= MAX_DEPTH:
                    raise SlipwayError(Code.GPX_MALFORMED, f"nested over {MAX_DEPTH} deep")
                parents.append(el)
                if name == "trkpt":
                    point = {}
                continue
            parents.pop()
            if parents:
                parents[-1].remove(el)  # done with: nothing stays in the tree
            if point is None:
                continue
            if name != "trkpt":
                if name in FIELDS and point.get(name) is None:  # the first one given
                    point[name] = (el.text or "").strip() or None
                continue
            points += 1
            when = point.get("time")
            lat, lon = float(el.attrib["lat"]), float(el.attrib["lon"])
            ele, speed = _float(point.get("ele")), _float(point.get("speed"))
            point = None
            if when is None:
                continue
            if abs(lat) > 90 or abs(lon) > 180:
                raise SlipwayError(Code.GPX_MALFORMED, f"track point out of range: {lat}, {lon}")
            rows.append((when, lat, lon, ele, speed))
            timed += 1
            if len(rows) >= BATCH_POINTS:
                yield _batch(rows)
                rows = []
    except (ParseError, DefusedXmlException) as exc:
        raise SlipwayError(Code.GPX_MALFORMED, f"not well-formed GPX: {exc}"[:300]) from exc
    except (KeyError, ValueError) as exc:
        raise SlipwayError(
            Code.GPX_MALFORMED, f"a track point lacks a numeric lat/lon: {exc}"
        ) from exc
    if rows:
        yield _batch(rows)
    if not timed:
        raise SlipwayError(
            Code.GPX_NO_POINTS, f"no track point with a <time> ({points} track points in all)"
        )
