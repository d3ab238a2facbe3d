"""The parse job: a telemetry upload (CSV, GPX, TCX, FIT or NMEA) → canonical `gnss_pvt` Parquet.

The source streams from object storage; batches are written as Parquet row groups to a
temporary file as they come (bounded memory for time-ordered input, which telemetry
almost always is; out-of-order input is sorted once at the end), then uploaded. The file
is GeoParquet 1.1 (telemetry/geoparquet.py): a WKB point `geometry` column, last, and
the `geo` metadata with the bbox of all rows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from slipway import storage, uploads
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.jobs import Job
from slipway.telemetry import (
    Readable,
    channels,
    csv_reader,
    fit_reader,
    geoparquet,
    gpx_reader,
    nmea_reader,
    sessions,
    tcx_reader,
)
from slipway.telemetry.schema import FILE_SCHEMA, SCHEMA, STREAM
from slipway.worker import Lease

log = logging.getLogger(__name__)
ROW_GROUP_ROWS = 1_000_000


class _Peeked:
    """A stream whose first bytes were looked at and are given back on read."""

    def __init__(self, stream: Readable, size: int = 4096) -> None:
        self.stream = stream
        self.head = stream.read(size)

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)


def detect(head: bytes) -> str:
    """The format, from the first bytes: FIT's binary header; XML (`<`) whose root is
    TCX's, else GPX; NMEA sentences (`$GPGGA,` …); other text is CSV."""
    if fit_reader.is_fit(head):
        return "fit"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise SlipwayError(Code.EMPTY_FILE, "the file is empty")
    if text.startswith(b"<"):
        return "tcx" if tcx_reader.is_tcx(head) else "gpx"
    if b"\x00" in head:
        raise SlipwayError(
            Code.UNSUPPORTED_FORMAT, "binary data: expected FIT, or CSV, GPX, TCX or NMEA text"
        )
    return "nmea" if nmea_reader.is_nmea(head) else "csv"


Reader = Callable[[Readable, channels.Sink], Iterator[pa.RecordBatch]]
READERS: dict[str, Reader] = {
    "fit": fit_reader.read,
    "gpx": gpx_reader.read,
    "tcx": tcx_reader.read,
    "nmea": nmea_reader.read,
    "csv": lambda stream, _: csv_reader.read(stream),
}


def batches(stream: Readable, sink: channels.Sink = channels.DISCARD) -> Iterator[pa.RecordBatch]:
    """The gnss_pvt batches; the sensors stream's, if the format has any, go to `sink`."""
    peeked = _Peeked(stream)
    return READERS[detect(peeked.head)](peeked, sink)


@dataclass(frozen=True)
class Written:
    rows: int
    start: datetime
    end: datetime
    sensor_rows: int = 0  # the sensors stream's (convert), 0 when there is none


# No ARROW:schema key: it would be fixed at open, without `geo`, and pyarrow takes a
# schema's metadata from it; the Parquet types alone read back as FILE_SCHEMA. No
# min/max statistics for the WKB bytes: meaningless (the `geo` bbox is what readers use).
_OPTIONS = {"compression": "zstd", "store_schema": False, "write_statistics": SCHEMA.names}


class _RowGroupWriter:
    """Writes row groups on a thread of its own, one queued at most: Parquet encoding and
    compression (and the WKB points, the bbox) overlap the parsing instead of stalling it.
    The `geo` metadata, with the bbox of all rows, is written at close."""

    def __init__(self, path: str) -> None:
        self._writer = pq.ParquetWriter(path, FILE_SCHEMA, **_OPTIONS)
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self.bbox: geoparquet.Bbox | None = None
        self._thread = threading.Thread(target=self._run, name="parquet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.bbox = geoparquet.union(self.bbox, geoparquet.bbox_of(table))
                    self._writer.write_table(geoparquet.with_geometry(table))
                except BaseException as exc:
                    self._error = exc

    def write(self, batches: list[pa.RecordBatch]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(pa.Table.from_batches(batches, SCHEMA))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is None and self.bbox is not None:
                self._writer.add_key_value_metadata(geoparquet.metadata(self.bbox))
        finally:
            self._writer.close()
        if self._error is not None:
            raise self._error


def write_parquet(
    source: Iterator[pa.RecordBatch], path: str, lease: Lease | None = None
) -> Written:
    """Stream batches into a Parquet file sorted by time; returns rows and time range."""
    rows, ordered = 0, True
    first: pa.TimestampScalar | None = None
    last: pa.TimestampScalar | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    writer = _RowGroupWriter(path)
    try:
        for batch in source:
            if lease is not None:
                lease.check()
            if not batch.num_rows:
                continue
            times = batch.column(0)
            if ordered:
                inside = pc.all(pc.greater_equal(times[1:], times[:-1])).as_py() is not False
                ordered = inside and (last is None or times[0].value >= last.value)
            bounds = pc.min_max(times)
            lo, hi = bounds["min"], bounds["max"]
            first = lo if first is None or lo.value < first.value else first
            last = hi if last is None or hi.value > last.value else last
            pending.append(batch)
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if lease is not None:
                lease.progress["rows"] = rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write(pending)
                pending, pending_rows = [], 0
        if pending:
            writer.write(pending)
    finally:
        writer.close()
    if rows == 0 or first is None or last is None or writer.bbox is None:
        raise SlipwayError(Code.EMPTY_FILE, "no rows with a time and a position")
    if not ordered:  # rare: sort once (memory proportional to the rows, documented)
        table = pq.read_table(path).sort_by("time")
        with pq.ParquetWriter(path, FILE_SCHEMA, **_OPTIONS) as out:
            out.write_table(table, row_group_size=ROW_GROUP_ROWS)
            out.add_key_value_metadata(geoparquet.metadata(writer.bbox))
    return Written(rows, first.as_py(), last.as_py())


def convert(
    bucket: str,
    key: str,
    out_key: str,
    lease: Lease | None = None,
    sensors_key: str | None = None,
) -> Written:
    """One telemetry object → its canonical Parquet object, in the same bucket, and its
    sensors stream's at `sensors_key` when the file has one."""
    # One streaming GET, read ahead by the CSV reader's thread. Parallel ranged GETs
    # measured slower against LocalStack (200 vs 430 MB/s); on AWS they may not be.
    body = storage.client().get_object(Bucket=bucket, Key=key)["Body"]
    paths = []
    for _ in range(2):
        fd, path = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        paths.append(path)
    path, sensors_path = paths
    sensors = channels.Writer(sensors_path)
    try:
        try:
            written = write_parquet(batches(body, sensors), path, lease)
        finally:
            sensors.close()
        if lease is not None:
            lease.check()
        storage.upload_file(path, bucket, out_key, "application/vnd.apache.parquet")
        if sensors.rows and sensors_key is not None:
            storage.upload_file(sensors_path, bucket, sensors_key, "application/vnd.apache.parquet")
            written = dataclasses.replace(written, sensor_rows=sensors.rows)
    finally:
        body.close()
        for p in paths:
            os.unlink(p)
    return written


def run_job(job: Job, lease: Lease) -> list[NewEvent]:
    upload = uploads.ready_for(job.upload_id, "parse")
    session_id = job.payload_uuid("sessionId")
    out_key = storage.stream_key(session_id, STREAM)
    sensors_key = storage.stream_key(session_id, channels.STREAM)
    bucket = settings().data_bucket

    def remove() -> None:  # the keys are the session's, shared by the job's attempts
        for key in (out_key, sensors_key):
            storage.client().delete_object(Bucket=bucket, Key=key)

    lease.discard_if_ended.append(remove)  # cancelled or failed: no session Parquet left
    written = convert(bucket, upload.blob_key, out_key, lease, sensors_key)
    log.info("telemetry parsed", extra={"upload_id": str(upload.id), "rows": written.rows})
    streams = [{"name": STREAM, "rows": written.rows, "objectKey": out_key}]
    if written.sensor_rows:
        streams.append(
            {"name": channels.STREAM, "rows": written.sensor_rows, "objectKey": sensors_key}
        )
    return [sessions.ready_event(job, written.start, written.end, streams)]
