"""CSV telemetry → batches of the canonical schema, streamed (pyarrow's CSV reader).

The first 64 KiB are read ahead to strip a UTF-8 BOM, sniff the delimiter and map the
header; the rest streams in blocks, so memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, timeparse
from slipway.telemetry.schema import SCHEMA, match_columns

HEAD_BYTES = 64 * 1024
BLOCK_BYTES = 8 * 1024 * 1024
DELIMITERS = ",;\t|"


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `stream` (what was read ahead, given back)."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self.head, self.stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def sniff_delimiter(text: str) -> str:
    lines = text.splitlines()[:20]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = lines[0] if lines else ""
        return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","


def _bad(message: str) -> SlipwayError:
    return SlipwayError(Code.CSV_BAD_VALUE, message)


class _Columns:
    """Turns pyarrow batches (file headers) into canonical batches."""

    def __init__(self, mapping: dict[str, str], sample: str | None) -> None:
        self.mapping = mapping
        self.time_type = timeparse.csv_time_type(sample)
        self.micros_per_unit = (
            timeparse.epoch_unit(float(sample))
            if sample and self.time_type == pa.float64()
            else None
        )

    def time(self, raw: pa.Array) -> pa.Array:
        try:
            if raw.type == timeparse.UTC_US:
                return raw
            if pa.types.is_timestamp(raw.type):  # naive: the file's times are UTC
                return pc.assume_timezone(raw, "UTC")
            if self.micros_per_unit is not None:
                return timeparse.from_epoch(raw, self.micros_per_unit)
            return timeparse.from_iso(raw)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _bad(f"time column {self.mapping['time']!r}: {exc}") from exc

    def canonical(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        def column(name: str) -> pa.Array:
            header = self.mapping.get(name)
            if header is None:
                return pa.nulls(batch.num_rows, pa.float64())
            return batch.column(header)

        arrays = [
            self.time(batch.column(self.mapping["time"])),
            column("lat"),
            column("lon"),
            column("alt"),
            column("speed"),
        ]
        table = pa.RecordBatch.from_arrays(arrays, names=SCHEMA.names)
        valid = pc.and_(
            pc.is_valid(arrays[0]), pc.and_(pc.is_valid(arrays[1]), pc.is_valid(arrays[2]))
        )
        table = table.filter(valid)
        lat, lon = table.column(1), table.column(2)
        if len(table) and (pc.max(pc.abs(lat)).as_py() > 90 or pc.max(pc.abs(lon)).as_py() > 180):
            raise _bad("latitude must be within ±90 and longitude within ±180 degrees")
        return pa.RecordBatch.from_arrays(table.columns, schema=SCHEMA)


def read(stream: Readable) -> Iterator[pa.RecordBatch]:
    head = stream.read(HEAD_BYTES)
    head = head.removeprefix(b"\xef\xbb\xbf")
    if not head.strip():
        raise SlipwayError(Code.EMPTY_FILE, "the file is empty")
    if b"\x00" in head:
        raise SlipwayError(Code.UNSUPPORTED_FORMAT, "binary data: expected CSV or GPX text")
    try:
        text = head.decode("utf-8", errors="strict" if len(head) < HEAD_BYTES else "ignore")
    except UnicodeDecodeError as exc:
        raise SlipwayError(Code.UNSUPPORTED_FORMAT, "the file is not UTF-8 text") from exc
    delimiter = sniff_delimiter(text)
    headers = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    mapping = match_columns(headers)
    if "time" not in mapping:
        raise SlipwayError(
            Code.CSV_NO_TIME_COLUMN,
            f"no time column among {headers[:12]}; name one time, timestamp, utc or datetime",
        )
    if "lat" not in mapping or "lon" not in mapping:
        raise SlipwayError(
            Code.CSV_NO_POSITION_COLUMNS,
            f"no latitude/longitude columns among {headers[:12]}; name them "
            "lat/latitude and lon/lng/long/longitude",
        )
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    next(rows, None)
    first = next(rows, None)
    index = headers.index(mapping["time"])
    sample = first[index].strip() if first and len(first) > index else None
    columns = _Columns(mapping, sample or None)
    types = {mapping["time"]: columns.time_type} | {
        mapping[c]: pa.float64() for c in ("lat", "lon", "alt", "speed") if c in mapping
    }
    try:
        reader = pacsv.open_csv(
            io.BufferedReader(_Prefixed(head, stream), buffer_size=BLOCK_BYTES),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(types), column_types=types, strings_can_be_null=True
            ),
        )
        for batch in reader:
            yield columns.canonical(batch)
    except pa.ArrowInvalid as exc:
        raise _bad(str(exc).splitlines()[0][:300]) from exc
