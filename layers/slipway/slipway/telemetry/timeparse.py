"""Time columns to UTC timestamps: ISO 8601 (with or without an offset; naive means UTC)
or epoch seconds / milliseconds / microseconds, told apart by magnitude."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

UTC_US = pa.timestamp("us", tz="UTC")
_NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")


_ZONED = re.compile(r"(Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)


def looks_numeric(sample: str) -> bool:
    return bool(_NUMBER.match(sample))


def csv_time_type(sample: str | None) -> pa.DataType:
    """The type pyarrow's CSV reader should parse a time column as, judged by its first
    value: numbers (epoch), zoned ISO 8601 (straight to UTC), naive ISO 8601 (then UTC);
    anything else is read as text and parsed here."""
    if sample is None:
        return pa.string()
    if looks_numeric(sample):
        return pa.float64()
    if re.match(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d", sample):
        return UTC_US if _ZONED.search(sample) else pa.timestamp("us")
    return pa.string()


def epoch_unit(first_value: float) -> int:
    """Microseconds per unit: values past year 5138 in seconds are ms, then µs."""
    magnitude = abs(first_value)
    if magnitude >= 1e14:
        return 1
    if magnitude >= 1e11:
        return 1_000
    return 1_000_000


def from_epoch(values: pa.Array, micros_per_unit: int) -> pa.Array:
    numbers = pc.cast(values, pa.float64())
    micros = pc.round(pc.multiply(numbers, float(micros_per_unit)))
    return pc.cast(pc.cast(micros, pa.int64()), UTC_US)


def from_iso(values: pa.Array) -> pa.Array:
    try:
        return pc.cast(values, UTC_US)
    except pa.ArrowInvalid:  # no offsets: local-free timestamps, taken as UTC
        return pc.assume_timezone(pc.cast(values, pa.timestamp("us")), "UTC")


_SUB_MICROS = re.compile(r"(\.\d{6})\d+")


def from_xsd(values: pa.Array) -> pa.Array:
    """XML Schema dateTime (GPX, TCX): ISO 8601 whose fraction may have any number of
    digits (GPSBabel writes seven); digits past the microsecond are dropped."""
    return from_iso(pc.replace_substring_regex(values, _SUB_MICROS.pattern, r"\1"))
