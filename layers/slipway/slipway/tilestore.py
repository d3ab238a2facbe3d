"""Where a slide's Deep Zoom tiles are kept, in one of two layouts (docs/tiling.md):

- `archive` (the default): dzsave's ZIP stream goes straight into one multipart object,
  `slide.zip`, with `slide.index.json.gz` telling where each tile lies; the API serves a
  tile with one ranged GET. A handful of PUTs per slide, whatever its size.
- `files`: one object per tile (`slide_files/{level}/{col}_{row}.jpeg`), the classic DZI
  folder a static host or CDN could serve as is; one PUT per tile.

Either way the `.dzi` descriptor is written last, once every tile is stored, so a visible
descriptor always means a complete pyramid. No pyvips import here: the API reads tiles.
"""

from __future__ import annotations

import gzip
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from slipway import storage
from slipway.zipstream import ZipStream

if TYPE_CHECKING:
    import pyvips

DZI_NAME = "slide"  # {prefix}slide.dzi + tiles below slide_files/
LAYOUTS = ("archive", "files")


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


class Writer:
    """Receives dzsave's ZIP stream; subclasses store the tiles. `write` is pyvips'
    on_write: it returns -1 (which stops dzsave) once storing failed or the lease is lost."""

    def __init__(self, bucket: str, prefix: str, lease: Lease) -> None:
        self.bucket, self.prefix, self.lease = bucket, prefix, lease
        self.descriptor: bytes | None = None
        self.tiles = 0
        self.error: BaseException | None = None
        self._zip = ZipStream(self._on_entry)

    def _on_entry(self, name: str, data: bytes, offset: int) -> None:
        if name.endswith(".dzi"):
            self.descriptor = data
        elif "/vips-properties" not in name:
            self.tiles += 1
            self.lease.progress["tiles"] = self.tiles
            self.store_tile(name.removeprefix(f"{DZI_NAME}_files/"), data, offset)

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

    def finish(self) -> None:
        """Wait for the tiles, then write what makes the pyramid visible."""
        self.drain()
        if self.error is not None:
            raise self.error
        if self.descriptor is None:
            raise RuntimeError("dzsave produced no .dzi descriptor")
        self.seal()
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

    def __init__(self, bucket: str, prefix: str, lease: Lease) -> None:
        super().__init__(bucket, prefix, lease)
        self.index: dict[str, list[int]] = {}
        self._archive = storage.ObjectWriter(bucket, archive_key(prefix), "application/zip")

    def store_tile(self, name: str, data: bytes, offset: int) -> None:
        self.index[name] = [offset, len(data)]

    def consume(self, data: bytes) -> None:
        self._archive.write(data)

    def drain(self) -> None:
        """Nothing to wait for: `seal` completes the archive."""

    def seal(self) -> None:
        self._archive.close()
        index = gzip.compress(
            json.dumps({"archive": self._archive.key, "tiles": self.index}).encode(), mtime=0
        )
        storage.put_bytes(self.bucket, index_key(self.prefix), index, "application/gzip")

    def abandon(self) -> None:
        self._archive.abort()


def writer(layout: str, bucket: str, prefix: str, lease: Lease) -> Writer:
    return (
        ArchiveWriter(bucket, prefix, lease)
        if layout == "archive"
        else FileWriter(bucket, prefix, lease)
    )


@lru_cache(maxsize=16)
def _index(bucket: str, prefix: str) -> dict[str, Any]:
    """A slide's archive index (immutable once written, so cached per process)."""
    data: dict[str, Any] = json.loads(
        gzip.decompress(storage.read_bytes(bucket, index_key(prefix)))
    )
    return data


def read_archived_tile(bucket: str, prefix: str, level: int, name: str) -> bytes | None:
    index = _index(bucket, prefix)
    where = index["tiles"].get(f"{level}/{name}")
    if where is None:
        return None
    offset, length = where
    return storage.read_range(bucket, index["archive"], offset, length)
