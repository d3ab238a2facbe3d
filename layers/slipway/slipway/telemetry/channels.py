"""The second stream, `sensors`: what devices record beside the position (heart rate,
cadence, power, temperature), one row per timed sample that has any of them, positioned
or not (a watch records the heart rate before its first fix).

Readers hand their batches to a `Sink`; the parse job's `Writer` streams them to a
Parquet file of their own, opened only when a first row comes (CSV and most GPX have
none, and then the session has no such stream).
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

STREAM = "sensors"
CHANNELS = ("heart_rate", "cadence", "power", "temperature")  # bpm, rpm, W, °C
SCHEMA = pa.schema(
    [pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False)]
    + [pa.field(name, pa.float64()) for name in CHANNELS]
)
Values = tuple[float | None, float | None, float | None, float | None]  # in CHANNELS' order


class Sink(Protocol):
    def add(self, batch: pa.RecordBatch) -> None: ...


class Discard:
    def add(self, batch: pa.RecordBatch) -> None:
        pass


DISCARD = Discard()


def batch(times: pa.Array, values: list[Values]) -> pa.RecordBatch:
    columns = [pa.array(c, pa.float64()) for c in zip(*values, strict=True)]
    return pa.RecordBatch.from_arrays([times, *columns], schema=SCHEMA)


def any_of(values: Values) -> bool:
    return any(v is not None for v in values)


class Writer:
    """Batches → a zstd Parquet file sorted by time (sorted once at the end if they came
    out of order, as the gnss_pvt stream)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._ordered = True
        self._last: int | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        times = pc.cast(batch.column(0), pa.int64())
        if self._ordered:
            inside = pc.all(pc.greater_equal(times[1:], times[:-1])).as_py() is not False
            self._ordered = inside and (self._last is None or times[0].as_py() >= self._last)
        self._last = pc.max(times).as_py()
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if not self._ordered:
            table = pq.read_table(self.path).sort_by("time")
            pq.write_table(table, self.path, compression="zstd")
