"""GPX 1.0 / 1.1 tracks → batches of the canonical schema, streamed.

defusedxml refuses DTDs and entities outright, so a billion-laughs file fails at its
first declaration. Elements are matched by local name (any namespace, any extension);
each track point is dropped from the tree once read, so memory does not grow.
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


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _float(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text)


def _point(el: Element) -> tuple[str | None, float, float, float | None, float | None]:
    when = ele = speed = None
    for child in el.iter():
        name = _local(child.tag)
        if name == "time" and when is None:
            when = (child.text or "").strip() or None
        elif name == "ele" and ele is None:
            ele = child.text
        elif name == "speed" and speed is None:
            speed = child.text
    return when, float(el.attrib["lat"]), float(el.attrib["lon"]), _float(ele), _float(speed)


def _batch(rows: list[tuple[str, float, float, float | None, float | None]]) -> pa.RecordBatch:
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
    rows: list[tuple[str, float, float, float | None, float | None]] = []
    stack: list[Element] = []
    points = timed = 0
    try:
        for event, el in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                if not stack and _local(el.tag) != "gpx":
                    raise SlipwayError(Code.UNSUPPORTED_FORMAT, "XML, but not GPX")
                stack.append(el)
                continue
            stack.pop()
            if _local(el.tag) != "trkpt":
                continue
            points += 1
            when, lat, lon, ele, speed = _point(el)
            if stack:
                stack[-1].remove(el)
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
