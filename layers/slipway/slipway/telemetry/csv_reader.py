"""CSV telemetry → batches of the canonical schema, streamed and parsed in parallel.

The first 64 KiB are read ahead to strip a UTF-8 BOM, sniff the delimiter, map the header
and judge the time format. The rest is cut into chunks of whole lines that pyarrow parses
on a few threads (it releases the GIL), a bounded number at a time, in order: memory does
not grow with the file, and every core works. A line longer than `MAX_LINE_BYTES` fails
with `CSV_LINE_TOO_LONG` as soon as it is seen, so no line is ever held whole beyond that.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from slipway.errors import Code, SlipwayError
from slipway.telemetry import Readable, timeparse
from slipway.telemetry.schema import SCHEMA, match_columns

HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024  # telemetry rows are ~100 bytes
PARSERS = 2
DELIMITERS = ",;\t|"


def sniff_delimiter(text: str) -> str:
    lines = text.splitlines()[:20]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = lines[0] if lines else ""
        return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","


def _bad(message: str) -> SlipwayError:
    return SlipwayError(Code.CSV_BAD_VALUE, message)


def _too_long(length: int, limit: int) -> SlipwayError:
    return SlipwayError(
        Code.CSV_LINE_TOO_LONG, f"a line of {length} bytes or more (the limit is {limit})"
    )


def check_lines(chunk: bytes, limit: int = MAX_LINE_BYTES) -> None:
    """Raise CSV_LINE_TOO_LONG if a line of `chunk` is longer than `limit` bytes. Such a
    line spans a whole aligned window of limit // 2 + 1 bytes, so only windows without a
    line break are measured: a few `find` calls per chunk."""
    window = limit // 2 + 1
    start = 0
    while start + window <= len(chunk):
        if chunk.find(b"\n", start, start + window) >= 0:
            start += window
            continue
        begin = chunk.rfind(b"\n", 0, start) + 1
        end = chunk.find(b"\n", start + window)
        end = len(chunk) if end < 0 else end
        if end - begin > limit:
            raise _too_long(end - begin, limit)
        start = (end // window + 1) * window


def line_chunks(
    first: bytes, stream: Readable, size: int = CHUNK_BYTES, limit: int = MAX_LINE_BYTES
) -> Iterator[bytes]:
    """`first` then the rest of `stream`, cut into chunks that end at a line break, none
    with a line longer than `limit` (an unfinished one is refused once it is too long)."""
    carry = first
    while True:
        data = stream.read(size)
        if not data:
            if carry.strip():
                check_lines(carry, limit)
                yield carry
            return
        carry += data
        cut = carry.rfind(b"\n") + 1
        if cut:
            chunk, carry = carry[:cut], carry[cut:]
            check_lines(chunk, limit)
            yield chunk
        if len(carry) > limit:
            raise _too_long(len(carry), limit)


def prefetched(chunks: Iterator[bytes], depth: int = 2) -> Iterator[bytes]:
    """The same chunks, read ahead by a thread (network reads overlap the work)."""
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ahead.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    threading.Thread(target=produce, name="csv-read", daemon=True).start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class _Columns:
    """Turns pyarrow tables (file headers) into canonical batches."""

    def __init__(self, mapping: dict[str, str], sample: str | None) -> None:
        self.mapping = mapping
        self.time_type = timeparse.csv_time_type(sample)
        self.micros_per_unit = None  # epoch times: the unit, judged by the first value
        if sample is not None and self.time_type == pa.float64():
            self.micros_per_unit = timeparse.epoch_unit(float(sample))

    def time(self, raw: pa.ChunkedArray) -> pa.ChunkedArray:
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

    def canonical(self, table: pa.Table) -> pa.Table:
        def column(name: str) -> pa.ChunkedArray:
            header = self.mapping.get(name)
            if header is None:
                return pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])
            return table.column(header)

        out = pa.table(
            [
                self.time(table.column(self.mapping["time"])),
                column("lat"),
                column("lon"),
                column("alt"),
                column("speed"),
            ],
            names=SCHEMA.names,
        )
        if any(out.column(i).null_count for i in range(3)):  # rows without a fix: dropped
            keep = pc.and_(
                pc.is_valid(out.column(0)),
                pc.and_(pc.is_valid(out.column(1)), pc.is_valid(out.column(2))),
            )
            out = out.filter(keep)
        if out.num_rows:
            lat, lon = pc.min_max(out.column(1)), pc.min_max(out.column(2))
            if (
                max(-lat["min"].as_py(), lat["max"].as_py()) > 90
                or max(-lon["min"].as_py(), lon["max"].as_py()) > 180
            ):
                raise _bad("latitude must be within ±90 and longitude within ±180 degrees")
        return out.cast(SCHEMA)


def read_head(stream: Readable) -> bytes:
    """The first HEAD_BYTES of `stream` (fewer only at its end; one read may give less)."""
    parts: list[bytes] = []
    got = 0
    while got < HEAD_BYTES and (data := stream.read(HEAD_BYTES - got)):
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def read(stream: Readable) -> Iterator[pa.RecordBatch]:
    raw = read_head(stream)
    more = len(raw) == HEAD_BYTES  # the file may go on
    head = raw.removeprefix(b"\xef\xbb\xbf")
    if not head.strip():
        raise SlipwayError(Code.EMPTY_FILE, "the file is empty")
    if b"\x00" in head:
        raise SlipwayError(Code.UNSUPPORTED_FORMAT, "binary data: expected CSV or GPX text")
    try:
        text = head.decode("utf-8", errors="ignore" if more else "strict")
    except UnicodeDecodeError as exc:
        raise SlipwayError(Code.UNSUPPORTED_FORMAT, "the file is not UTF-8 text") from exc
    if more and b"\n" not in head:
        raise SlipwayError(
            Code.CSV_LINE_TOO_LONG, f"the header line is longer than {HEAD_BYTES} bytes"
        )
    delimiter = sniff_delimiter(text)
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    headers, first = next(rows, []), next(rows, None)
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
    index = headers.index(mapping["time"])
    sample = first[index].strip() if first and len(first) > index else None
    columns = _Columns(mapping, sample or None)
    types = {mapping["time"]: columns.time_type} | {
        mapping[c]: pa.float64() for c in ("lat", "lon", "alt", "speed") if c in mapping
    }
    options = {
        # blocks of twice the longest line allowed: pyarrow refuses a row that straddles
        # two block boundaries, which it may do for rows over one block
        "read_options": pacsv.ReadOptions(
            column_names=headers, use_threads=True, block_size=2 * MAX_LINE_BYTES
        ),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter),
        "convert_options": pacsv.ConvertOptions(
            include_columns=list(types), column_types=types, strings_can_be_null=True
        ),
    }

    def parse(chunk: bytes) -> pa.Table:
        return columns.canonical(pacsv.read_csv(io.BytesIO(chunk), **options))

    body = head[head.index(b"\n") + 1 :] if b"\n" in head else b""  # past the header line
    with ThreadPoolExecutor(PARSERS, thread_name_prefix="csv") as pool:
        pending: deque[Future[pa.Table]] = deque()
        try:
            for chunk in prefetched(line_chunks(body, stream)):
                pending.append(pool.submit(parse, chunk))
                if len(pending) > PARSERS:
                    yield from pending.popleft().result().to_batches()
            while pending:
                yield from pending.popleft().result().to_batches()
        except pa.ArrowInvalid as exc:
            raise _bad(str(exc).splitlines()[0][:300]) from exc
        finally:
            for future in pending:
                future.cancel()
