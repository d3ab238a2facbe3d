"""The streaming XML under GPX and TCX: point elements → batches of the canonical schema.

defusedxml refuses DTDs and entities outright, so a billion-laughs file fails at its
first declaration. Elements are matched by local name (any namespace, any extension).
Memory stays bounded for any input: every element leaves the tree when it ends (points,
and all that is ignored), a point's fields are kept as text until it ends, nesting is
limited to `MAX_DEPTH`, and no single tag or text may exceed `MAX_TOKEN_BYTES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import pyarrow as pa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, channels, timeparse
from slipway.telemetry.schema import SCHEMA

BATCH_POINTS = 65_536
MAX_DEPTH = 64  # gpx/trk/trkseg/trkpt/extensions/… is about 8 deep
MAX_TOKEN_BYTES = 8 * 1024 * 1024  # the input read between two elements' starts or ends
Row = tuple[str, float, float, float | None, float | None]
Fields = dict[str, str | None]


@dataclass(frozen=True)
class Dialect:
    label: str  # "GPX", for messages
    root: str  # the root element's local name
    points: frozenset[str]  # the point elements counted (and given to `row`)
    fields: frozenset[str]  # the descendants of a point whose first text is kept
    row: Callable[[str, dict[str, str], Fields], Row | None]  # None: skipped
    malformed: Code
    time: str  # the field that holds a point's time
    sample: Callable[[Fields], channels.Values]  # the sensors stream's values


class _Metered:
    """The stream, refusing to give the parser more than MAX_TOKEN_BYTES without it
    reporting an element: a tag or text that long is not telemetry, and would be held."""

    def __init__(self, stream: Readable, code: Code) -> None:
        self.stream = stream
        self.code = code
        self.unreported = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.unreported += len(data)
        if self.unreported > MAX_TOKEN_BYTES:
            raise SlipwayError(
                self.code, f"a tag or text longer than {MAX_TOKEN_BYTES // (1024 * 1024)} MiB"
            )
        return data


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text)


def _times(texts: tuple[str, ...] | list[str], dialect: Dialect) -> pa.Array:
    try:
        return timeparse.from_xsd(pa.array(texts, pa.string()))
    except pa.ArrowInvalid as exc:
        raise SlipwayError(dialect.malformed, f"a time is not ISO 8601: {exc}") from exc


def _batch(rows: list[Row], dialect: Dialect) -> pa.RecordBatch:
    times, lats, lons, alts, speeds = zip(*rows, strict=True)
    time = _times(times, dialect)
    return pa.RecordBatch.from_arrays(
        [
            time,
            pa.array(lats, pa.float64()),
            pa.array(lons, pa.float64()),
            pa.array(alts, pa.float64()),
            pa.array(speeds, pa.float64()),
        ],
        schema=SCHEMA,
    )


def batches(
    stream: Readable, dialect: Dialect, tally: Counter[str], sink: channels.Sink
) -> Iterator[pa.RecordBatch]:
    """The rows of every point, in document order; `tally` counts the points by element
    name and the rows ("rows") for the caller's verdict on a file that gave none. The
    timed points' sensor values go to `sink`."""
    source = _Metered(stream, dialect.malformed)
    rows: list[Row] = []
    sampled: list[str] = []
    samples: list[channels.Values] = []
    parents: list[Element] = []  # the open elements, outermost first
    point: Fields | None = None  # the open point's fields
    try:
        for event, el in iterparse(source, events=("start", "end"), forbid_dtd=True):
            source.unreported = 0
            name = local(el.tag)
            if event == "start":
                if not parents and name != dialect.root:
                    raise SlipwayError(Code.UNSUPPORTED_FORMAT, f"XML, but not {dialect.label}")
                if len(parents) >= MAX_DEPTH:
                    raise SlipwayError(dialect.malformed, f"nested over {MAX_DEPTH} deep")
                parents.append(el)
                if name in dialect.points:
                    point = {}
                continue
            parents.pop()
            if parents:
                parents[-1].remove(el)  # done with: nothing stays in the tree
            if point is None:
                continue
            if name not in dialect.points:
                if name in dialect.fields and point.get(name) is None:  # the first one given
                    point[name] = (el.text or "").strip() or None
                continue
            tally[name] += 1
            row = dialect.row(name, dict(el.attrib), point)
            when, sample = point.get(dialect.time), dialect.sample(point)
            point = None
            if when is not None and channels.any_of(sample):
                sampled.append(when)
                samples.append(sample)
                if len(samples) >= BATCH_POINTS:
                    sink.add(channels.batch(_times(sampled, dialect), samples))
                    sampled, samples = [], []
            if row is None:
                continue
            if abs(row[1]) > 90 or abs(row[2]) > 180:
                raise SlipwayError(dialect.malformed, f"a point out of range: {row[1]}, {row[2]}")
            rows.append(row)
            tally["rows"] += 1
            if len(rows) >= BATCH_POINTS:
                yield _batch(rows, dialect)
                rows = []
    except (ParseError, DefusedXmlException) as exc:
        raise SlipwayError(
            dialect.malformed, f"not well-formed {dialect.label}: {exc}"[:300]
        ) from exc
    except (KeyError, ValueError) as exc:
        raise SlipwayError(
            dialect.malformed, f"a point lacks a numeric latitude/longitude or value: {exc}"
        ) from exc
    if samples:
        sink.add(channels.batch(_times(sampled, dialect), samples))
    if rows:
        yield _batch(rows, dialect)
