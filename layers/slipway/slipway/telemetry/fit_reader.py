"""Garmin FIT activity files → batches of the canonical schema (fitdecode, streamed).

Every `record` message with a timestamp and a position becomes a row: positions are
semicircles (2³¹ per 180°), altitude and speed the `enhanced_` fields when given.
Records without a position (no fix yet, an indoor workout) are skipped there; heart
rate, cadence, power and temperature go to the `sensors` stream (channels.py), with or
without a position. CRCs are checked: a damaged or truncated file is `FIT_MALFORMED`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import fitdecode  # type: ignore[import-untyped]
import pyarrow as pa

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, channels
from slipway.telemetry.schema import SCHEMA

BATCH_POINTS = 65_536
DEGREES_PER_SEMICIRCLE = 180 / 2**31


def is_fit(head: bytes) -> bool:
    """The FIT file header: its size (12 or 14) first, then ".FIT" at bytes 8-11."""
    return len(head) >= 12 and head[0] in (12, 14) and head[8:12] == b".FIT"


def _batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def _first(values: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, int | float):  # None when invalid; never a list or text
            return float(value)
    return None


def read(stream: Readable, sink: channels.Sink = channels.DISCARD) -> Iterator[pa.RecordBatch]:
    rows: list[tuple[Any, ...]] = []
    sampled: list[datetime] = []
    samples: list[channels.Values] = []
    records = positioned = 0
    reader = fitdecode.FitReader(
        stream,
        check_crc=fitdecode.CrcCheck.RAISE,
        error_handling=fitdecode.ErrorHandling.RAISE,
    )
    try:
        for frame in reader:
            if not isinstance(frame, fitdecode.FitDataMessage) or frame.name != "record":
                continue
            records += 1
            values = {f.name: f.value for f in frame.fields}
            when, lat, lon = (values.get(k) for k in ("timestamp", "position_lat", "position_long"))
            if not isinstance(when, datetime):
                continue
            sample = (
                _first(values, "heart_rate"),
                _first(values, "cadence"),
                _first(values, "power"),
                _first(values, "temperature"),
            )
            if channels.any_of(sample):
                sampled.append(when)
                samples.append(sample)
                if len(samples) >= BATCH_POINTS:
                    sink.add(channels.batch(pa.array(sampled, SCHEMA.field("time").type), samples))
                    sampled, samples = [], []
            if lat is None or lon is None:
                continue
            lat, lon = lat * DEGREES_PER_SEMICIRCLE, lon * DEGREES_PER_SEMICIRCLE
            if abs(lat) > 90 or abs(lon) > 180:
                continue  # the invalid marker (0x7FFFFFFF) decoded as a number
            alt = _first(values, "enhanced_altitude", "altitude")
            rows.append((when, lat, lon, alt, _first(values, "enhanced_speed", "speed")))
            positioned += 1
            if len(rows) >= BATCH_POINTS:
                yield _batch(rows)
                rows = []
    except fitdecode.FitError as exc:
        raise SlipwayError(Code.FIT_MALFORMED, f"not a readable FIT file: {exc}"[:300]) from exc
    finally:
        reader.close()
    if samples:
        sink.add(channels.batch(pa.array(sampled, SCHEMA.field("time").type), samples))
    if rows:
        yield _batch(rows)
    if not positioned:
        raise SlipwayError(
            Code.FIT_NO_POSITIONS, f"none of the {records} records has a time and a position"
        )
