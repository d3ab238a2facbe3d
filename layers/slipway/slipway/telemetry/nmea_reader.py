"""NMEA 0183 logs (GGA and RMC sentences, any talker) → batches of the canonical schema.

A receiver writes one epoch as several sentences with the same time of day: GGA gives the
position, fix quality and altitude, RMC the date, validity and speed over ground. The
sentences of an epoch are merged; an epoch with a fix (GGA quality > 0, else RMC status
`A`) becomes a row. GGA has no date, so it takes the epoch's RMC date, or the last one
seen (a day later when the time of day went back past midnight); fixes before any date
are dropped. Lines that are not a sentence of ours, or fail their checksum, are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa
import pynmea2  # type: ignore[import-untyped]

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, channels
from slipway.telemetry.schema import SCHEMA

BATCH_POINTS = 65_536
CHUNK_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # a sentence is at most 82 characters
KNOT = 1852 / 3600  # m/s
_SENTENCE = re.compile(rb"^[$!][A-Z]{5},")
Row = tuple[datetime, float, float, float | None, float | None]


def is_nmea(head: bytes) -> bool:
    """The first non-blank line is a sentence: `$GPGGA,`, `$GNRMC,`, …"""
    return _SENTENCE.match(head.removeprefix(b"\xef\xbb\xbf").lstrip()) is not None


@dataclass
class _Epoch:
    tod: time
    day: date | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    speed: float | None = None
    gga: bool = False  # the position is GGA's (RMC's does not override it)


def _lines(stream: Readable) -> Iterator[bytes]:
    rest = b""
    while chunk := stream.read(CHUNK_BYTES):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE_BYTES:
            raise SlipwayError(Code.NMEA_MALFORMED, "a line over 64 KiB: not an NMEA log")
        yield from lines
    if rest:
        yield rest


class _Log:
    def __init__(self) -> None:
        self.day: date | None = None  # the date of the last dated epoch
        self.last_tod: time | None = None
        self.sentences = self.fixes = self.undated = 0

    def row(self, epoch: _Epoch) -> Row | None:
        if epoch.day is not None:
            self.day = epoch.day
        elif self.day is not None and self.last_tod is not None and epoch.tod < self.last_tod:
            self.day += timedelta(days=1)  # past midnight with no RMC yet
        self.last_tod = epoch.tod
        if epoch.lat is None or epoch.lon is None:
            return None
        self.fixes += 1
        if self.day is None:
            self.undated += 1
            return None
        when = datetime.combine(self.day, epoch.tod.replace(tzinfo=None), UTC)
        return (when, epoch.lat, epoch.lon, epoch.alt, epoch.speed)


def _merge(epoch: _Epoch, msg: pynmea2.NMEASentence) -> None:
    if msg.sentence_type == "GGA":
        if msg.gps_qual and msg.lat and msg.lon:
            epoch.lat, epoch.lon, epoch.gga = msg.latitude, msg.longitude, True
            epoch.alt = None if msg.altitude is None else float(msg.altitude)
        return
    if msg.datestamp is not None:
        epoch.day = msg.datestamp
    if msg.status == "A" and msg.lat and msg.lon:
        if not epoch.gga:
            epoch.lat, epoch.lon = msg.latitude, msg.longitude
        if msg.spd_over_grnd is not None:
            epoch.speed = float(msg.spd_over_grnd) * KNOT


def _batch(rows: list[Row]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def read(stream: Readable, sink: channels.Sink = channels.DISCARD) -> Iterator[pa.RecordBatch]:
    """NMEA has no sensor channels: `sink` is there for the readers' common signature."""
    log = _Log()
    epoch: _Epoch | None = None
    rows: list[Row] = []
    for raw in _lines(stream):
        line = raw.strip().decode("ascii", "replace")
        if line[3:6] not in ("GGA", "RMC"):
            continue
        try:
            msg = pynmea2.parse(line)
        except (pynmea2.ParseError, ValueError):
            continue  # a damaged line (checksum, cut short): a log goes on after it
        log.sentences += 1
        if msg.timestamp is None:
            continue
        if epoch is None or msg.timestamp != epoch.tod:
            if epoch is not None and (row := log.row(epoch)) is not None:
                rows.append(row)
            epoch = _Epoch(msg.timestamp)
        try:
            _merge(epoch, msg)
        except ValueError:
            continue
        if len(rows) >= BATCH_POINTS:
            yield _batch(rows)
            rows = []
    if epoch is not None and (row := log.row(epoch)) is not None:
        rows.append(row)
    if rows:
        yield _batch(rows)
        return
    if not log.sentences:
        raise SlipwayError(Code.NMEA_MALFORMED, "no readable GGA or RMC sentence")
    if not log.fixes:
        raise SlipwayError(
            Code.NMEA_NO_FIX, f"none of the {log.sentences} GGA/RMC sentences has a fix"
        )
    raise SlipwayError(
        Code.NMEA_NO_DATE,
        f"{log.undated} fixes but no date: GGA gives the time of day only (an RMC is needed)",
    )
