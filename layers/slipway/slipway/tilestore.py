"""Where a slide's Deep Zoom tiles are kept, in one of two layouts (docs/tiling.md):

- `archive` (the default): dzsave's ZIP stream goes straight into one multipart object,
  `slide.zip`, with `slide.index.json.gz` telling where each tile lies; the API serves a
  tile with one ranged GET. A handful of PUTs per slide, whatever its size.
- `files`: one object per tile (`slide_files/{level}/{col}_{row}.jpeg`), the classic DZI
  folder a static host or CDN could serve as is; one PUT per tile.

Either way the `.dzi` descriptor is written last, once every tile is stored, so a visible
descriptor always means a complete pyramid. No pyvips import here: the API reads tiles.

Each attempt of a tile job writes under a prefix of its own (`begin_attempt`:
`slides/{uploadId}/{jobId}/{attempt}/`), and the slide row points at the prefix of the
attempt whose success was recorded under its lease (`jobs.succeed`), so a worker that lost
its lease writes only where nothing is served. Its writes are removed by itself (the
writer registers `remove` in `lease.discard`) or by the job's next attempt.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from slipway import storage
from slipway.zipstream import ZipStream

if TYPE_CHECKING:
    import pyvips
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)
DZI_NAME = "slide"  # {prefix}slide.dzi + tiles below slide_files/
LAYOUTS = ("archive", "files")
DELETE_BATCH = 1000  # S3 DeleteObjects' limit


def dzi_key(prefix: str) -> str:
    return f"{prefix}{DZI_NAME}.dzi"


def archive_key(prefix: str) -> str:
    return f"{prefix}{DZI_NAME}.zip"


def index_key(prefix: str) -> str:
    return f"{prefix}{DZI_NAME}.index.json.gz"


def tile_key(prefix: str, level: int, name: str) -> str:
    return f"{prefix}{DZI_NAME}_files/{level}/{name}"


class Lease(Protocol):
    lost: bool
    progress: dict[str, Any]
    discard: list[Callable[[], None]]


def delete_under(bucket: str, prefix: str, keep: Callable[[str], bool] = lambda key: False) -> int:
    """Delete every object (and abort every unfinished upload) under `prefix`, except the
    keys `keep` picks; returns how many objects went."""
    for key, multipart_id, _ in storage.list_multipart_uploads(bucket, prefix):
        if not keep(key):
            storage.abort_multipart(bucket, key, multipart_id)
    doomed = [key for key, _, _ in storage.list_keys(bucket, prefix) if not keep(key)]
    for start in range(0, len(doomed), DELETE_BATCH):
        batch: list[ObjectIdentifierTypeDef] = [
            {"Key": key} for key in doomed[start : start + DELETE_BATCH]
        ]
        storage.client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(doomed)


def begin_attempt(bucket: str, slide_prefix: str, job_id: UUID, attempt: int) -> str:
    """The prefix attempt `attempt` of tile job `job_id` writes under, once what the job's
    earlier attempts left there is removed. None of those was ever served: an attempt
    after the first exists only because the ones before it recorded no success."""
    base = f"{slide_prefix}{job_id}/"

    def later(key: str) -> bool:  # this attempt, or a later one (this one is the zombie)
        number = key.removeprefix(base).split("/", 1)[0]
        return not number.isdigit() or int(number) >= attempt

    removed = delete_under(bucket, base, keep=later)
    if removed:
        log.info(
            "removed what earlier attempts wrote",
            extra={"job_id": str(job_id), "attempt": attempt, "objects": removed},
        )
    return f"{base}{attempt}/"


class Writer:
    """Receives dzsave's ZIP stream; subclasses store the tiles. `write` is pyvips'
    on_write: it returns -1 (which stops dzsave) once storing failed or the lease is lost."""

    def __init__(
        self, bucket: str, prefix: str, lease: Lease, rename: Rename | None = None
    ) -> None:
        self.bucket, self.prefix, self.lease = bucket, prefix, lease
        self.rename = rename
        self.on_tile: Callable[[str, bytes], None] | None = None  # sees each stored tile
        self.descriptor: bytes | None = None
        self.tiles = 0
        self.error: BaseException | None = None
        self._zip = ZipStream(self._on_entry)
        lease.discard.append(self.remove)  # if the attempt's result is not recorded

    def remove(self) -> None:
        """Delete what this writer stored (its prefix is its attempt's alone)."""
        self.abandon()  # nothing in flight any more
        delete_under(self.bucket, self.prefix)

    def _on_entry(self, name: str, data: bytes, offset: int) -> None:
        if name.endswith(".dzi"):
            self.descriptor = data
        elif "/vips-properties" not in name:
            tile: str | None = name.removeprefix(f"{DZI_NAME}_files/")
            if self.rename is not None and tile is not None:
                tile = self.rename(tile)
            if tile is None:
                return  # a level this writer does not keep (a fanned-out region's)
            self.tiles += 1
            self.lease.progress["tiles"] = self.tiles
            if self.on_tile is not None:
                self.on_tile(tile, data)
            self.store_tile(tile, data, offset)

    def store_tile(self, name: str, data: bytes, offset: int) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> int:
        if self.error is not None or self.lease.lost:
            return -1
        try:
            chunk = bytes(data)
            self._zip.write(chunk)
            self.consume(chunk)
        except BaseException as exc:
            self.error = self.error or exc
            return -1
        return len(data)

    def consume(self, data: bytes) -> None:
        """The raw stream, for layouts that keep it."""

    def target(self) -> pyvips.Target:
        import pyvips

        tgt = pyvips.TargetCustom()
        tgt.on_write(self.write)
        tgt.on_end(lambda: 0)
        return tgt

    def finish(self, descriptor: bool = True) -> None:
        """Wait for the tiles, then write what makes the pyramid visible (a fanned-out
        region's writer writes no descriptor: `descriptor=False`)."""
        self.drain()
        if self.error is not None:
            raise self.error
        if self.descriptor is None:
            raise RuntimeError("dzsave produced no .dzi descriptor")
        self.seal()
        if descriptor:
            storage.put_bytes(self.bucket, dzi_key(self.prefix), self.descriptor, "application/xml")

    def drain(self) -> None:
        raise NotImplementedError

    def seal(self) -> None:
        """Written after every tile, before the descriptor."""

    def abandon(self) -> None:
        raise NotImplementedError


class _Parallel:
    """A bounded pool of uploads: at most `slots` queued or running (back-pressure)."""

    def __init__(self, workers: int, slots: int, on_error: Any) -> None:
        self._slots = threading.Semaphore(slots)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="put")
        self._on_error = on_error

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        self._slots.acquire()

        def run() -> Any:
            try:
                return fn(*args)
            except BaseException as exc:
                self._on_error(exc)
                raise
            finally:
                self._slots.release()

        return self._pool.submit(run)

    def wait(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class FileWriter(Writer):
    """One object per tile, PUT in parallel as dzsave produces them."""

    def __init__(self, bucket: str, prefix: str, lease: Lease, parallel: int = 16) -> None:
        super().__init__(bucket, prefix, lease)
        self._uploads = _Parallel(parallel, parallel * 2, self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.error = self.error or exc

    def store_tile(self, name: str, data: bytes, offset: int) -> None:
        key = f"{self.prefix}{DZI_NAME}_files/{name}"
        kind = f"image/{name.rsplit('.', 1)[-1]}"
        self._uploads.submit(storage.put_bytes, self.bucket, key, data, kind)

    def drain(self) -> None:
        self._uploads.wait()

    def abandon(self) -> None:
        self._uploads.wait(cancel=True)


class ArchiveWriter(Writer):
    """The whole ZIP stream as one object (uploaded in parts as dzsave writes), plus an
    index of every tile's byte range."""

    def __init__(
        self, bucket: str, prefix: str, lease: Lease, rename: Rename | None = None
    ) -> None:
        super().__init__(bucket, prefix, lease, rename)
        self.index: dict[str, list[int]] = {}
        self.index_extra: dict[str, Any] = {}  # more for the index (a fanned-out slide's)
        self._archive = storage.ObjectWriter(bucket, archive_key(prefix), "application/zip")
        self._sealed = False

    def store_tile(self, name: str, data: bytes, offset: int) -> None:
        self.index[name] = [offset, len(data)]

    def consume(self, data: bytes) -> None:
        self._archive.write(data)

    def drain(self) -> None:
        """Nothing to wait for: `seal` completes the archive."""

    def seal(self) -> None:
        self._archive.close()
        self._sealed = True
        index = gzip.compress(
            json.dumps(
                {"archive": self._archive.key, "tiles": self.index, **self.index_extra}
            ).encode(),
            mtime=0,
        )
        storage.put_bytes(self.bucket, index_key(self.prefix), index, "application/gzip")

    def abandon(self) -> None:
        if not self._sealed:  # a completed upload has nothing to abort
            self._archive.abort()


Rename = Callable[[str], str | None]  # a tile's 'level/col_row.ext' as stored, or None: drop


def writer(layout: str, bucket: str, prefix: str, lease: Lease) -> Writer:
    return (
        ArchiveWriter(bucket, prefix, lease)
        if layout == "archive"
        else FileWriter(bucket, prefix, lease)
    )


def _load_index(bucket: str, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(storage.read_bytes(bucket, key)))
    return data


@lru_cache(maxsize=64)
def read_index(bucket: str, key: str) -> dict[str, Any]:
    """A fanned-out region's archive index (immutable once written, so cached)."""
    return _load_index(bucket, key)


@lru_cache(maxsize=16)
def _index(bucket: str, prefix: str) -> dict[str, Any]:
    """A slide's archive index."""
    return _load_index(bucket, index_key(prefix))


def region_index(index: dict[str, Any], level: int, name: str) -> str | None:
    """For a fanned-out slide's index (docs/tiling.md#fan-out): the index key of the
    region that holds tile `level`/`name` if the regions' levels hold it, else None (the
    top levels are in this index itself). Regions are rectangles of level 0 aligned to
    2**depth tiles, so the tile's top-left pixel names its region."""
    regions = index.get("regions")
    if not regions:
        return None
    below_top = index["levels"] - 1 - level  # 0 at full size
    if below_top > index["depth"]:
        return None
    col, _, row = name.partition(".")[0].partition("_")
    if not (col.isdigit() and row.isdigit()):
        return None
    span = index["tileSize"] << below_top
    x, y = int(col) * span, int(row) * span
    for region in regions:
        if 0 <= x - region["x"] < region["width"] and 0 <= y - region["y"] < region["height"]:
            return str(region["index"])
    return None


def read_archived_tile(bucket: str, prefix: str, level: int, name: str) -> bytes | None:
    index = _index(bucket, prefix)
    held_by = region_index(index, level, name)
    if held_by is not None:
        index = read_index(bucket, held_by)
    where = index["tiles"].get(f"{level}/{name}")
    if where is None:
        return None
    offset, length = where
    return storage.read_range(bucket, index["archive"], offset, length)
