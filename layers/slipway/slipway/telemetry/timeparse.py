"""Time columns to UTC timestamps: ISO 8601 (with or without an offset; naive means UTC)
or epoch seconds / milliseconds / microseconds, told apart by magnitude."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

UTC_US = pa.timestamp("us", tz="UTC")
_NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")


def looks_numeric(sample: str) -> bool:
    return bool(_NUMBER.match(sample))


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
