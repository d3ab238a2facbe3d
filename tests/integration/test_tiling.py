"""Tiling straight from S3 to S3 (ranged reads in, streamed tile PUTs out), real storage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import pyvips

from slipway import storage, tilestore, tiling
from slipway.client import Client
from slipway.errors import Code, SlipwayError
from slipway.worker import Lease


def lease() -> Lease:
    return Lease.detached("tile", "tester", 60)


def sample(width: int = 1500, height: int = 1000) -> pyvips.Image:
    x = pyvips.Image.xyz(width, height)
    return (
        (x[0] % 256)
        .bandjoin([x[1] % 256, (x[0] + x[1]) % 256])
        .cast("uchar")
        .copy(interpretation="srgb")
    )


def stored(data: bytes) -> tuple[str, str]:
    key = f"test-sources/{uuid.uuid4()}"
    storage.put_bytes(os.environ["SLIPWAY_DATA_BUCKET"], key, data, "application/octet-stream")
    return os.environ["SLIPWAY_DATA_BUCKET"], key


def tile_stored(
    source: tuple[str, str], size: int, prefix: str, options: tiling.TileOptions | None = None
) -> dict[str, Any]:
    """Tile a stored source into the tiles bucket under `prefix`."""
    bucket, key = source
    out = os.environ["SLIPWAY_TILES_BUCKET"]
    return tiling.tile(bucket, key, size, out, prefix, lease(), options or tiling.TileOptions())


def tile_bytes(
    data: bytes, options: tiling.TileOptions | None = None
) -> tuple[dict[str, Any], str]:
    prefix = f"test-slides/{uuid.uuid4()}/"
    return tile_stored(stored(data), len(data), prefix, options), prefix


def objects(prefix: str) -> dict[str, int]:
    return {k: size for k, size, _ in storage.list_keys(os.environ["SLIPWAY_TILES_BUCKET"], prefix)}


def tile_names(prefix: str, layout: str) -> list[str]:
    """Every stored tile as 'level/col_row.ext'."""
    if layout == "archive":
        return sorted(tilestore._index(os.environ["SLIPWAY_TILES_BUCKET"], prefix)["tiles"])
    marker = f"{tilestore.DZI_NAME}_files/"
    return sorted(k.split(marker, 1)[1] for k in objects(prefix) if marker in k)


def read_tile(prefix: str, layout: str, name: str) -> bytes:
    level, tile = name.split("/")
    bucket = os.environ["SLIPWAY_TILES_BUCKET"]
    if layout == "archive":
        data = tilestore.read_archived_tile(bucket, prefix, int(level), tile)
        assert data is not None
        return data
    return storage.read_bytes(bucket, tilestore.tile_key(prefix, int(level), tile))


SOURCES: dict[str, Callable[[pyvips.Image], bytes]] = {
    "pyramidal tiff": lambda im: im.tiffsave_buffer(tile=True, pyramid=True, compression="jpeg"),
    "bigtiff": lambda im: im.tiffsave_buffer(tile=True, pyramid=True, bigtiff=True),
    "strip tiff": lambda im: im.tiffsave_buffer(),
    "jpeg": lambda im: im.jpegsave_buffer(Q=90),
    "png": lambda im: im.pngsave_buffer(),
    "png with alpha": lambda im: im.bandjoin(255).pngsave_buffer(),
    "16-bit tiff": lambda im: (
        (im.cast("ushort") * 256).copy(interpretation="rgb16").tiffsave_buffer()
    ),
}


@pytest.mark.parametrize(
    ("kind", "layout"),
    [(kind, "archive") for kind in SOURCES] + [("pyramidal tiff", "files"), ("jpeg", "files")],
)
def test_formats_become_a_complete_deep_zoom_pyramid(kind: str, layout: str) -> None:
    result, prefix = tile_bytes(SOURCES[kind](sample()), tiling.TileOptions(layout=layout))
    assert (result["width"], result["height"], result["levels"]) == (1500, 1000, 12)
    assert result["layout"] == layout
    tiles = tile_names(prefix, layout)
    assert len(tiles) == result["tileCount"] > 0
    descriptor = storage.read_bytes(os.environ["SLIPWAY_TILES_BUCKET"], tilestore.dzi_key(prefix))
    assert b'Width="1500"' in descriptor and b'TileSize="256"' in descriptor
    assert b'Overlap="0"' in descriptor
    deepest = [name for name in tiles if name.startswith("11/")]
    assert len(deepest) == 6 * 4  # ceil(1500/256) × ceil(1000/256)
    tile = pyvips.Image.new_from_buffer(read_tile(prefix, layout, deepest[0]), "")
    assert tile.bands == 3 and tile.width == 256  # no overlap: IIIF-aligned
    if layout == "archive":  # a handful of objects, not one per tile
        assert set(objects(prefix)) == {
            tilestore.dzi_key(prefix),
            tilestore.archive_key(prefix),
            tilestore.index_key(prefix),
        }


def test_tile_options_are_honoured() -> None:
    options = tiling.TileOptions(tile_size=512, overlap=0, format="webp", quality=70)
    result, prefix = tile_bytes(SOURCES["jpeg"](sample()), options)
    assert result["format"] == "webp"
    names = tile_names(prefix, "archive")
    assert all(n.endswith(".webp") for n in names)
    assert len([n for n in names if n.startswith("11/")]) == 3 * 2


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: SOURCES["jpeg"](sample())[:20_000], Code.IMAGE_UNREADABLE),  # truncated
        (lambda: SOURCES["png"](sample())[:5_000], Code.IMAGE_UNREADABLE),
        (lambda: b"%PDF-1.4 definitely not an image" * 50, Code.IMAGE_UNSUPPORTED),
        (lambda: b"\x00", Code.IMAGE_UNSUPPORTED),
        (lambda: b"", Code.IMAGE_UNREADABLE),  # zero bytes
        (lambda: b"\xff\xd8\xff but no more of a JPEG", Code.IMAGE_UNREADABLE),
        # a decompression bomb: a tiny file that declares 30000 × 30000 pixels
        (
            lambda: pyvips.Image.black(30000, 30000).pngsave_buffer(compression=9),
            Code.IMAGE_TOO_LARGE,
        ),
    ],
)
def test_bad_images_fail_permanently_and_leave_no_descriptor(
    make: Callable[[], bytes],
    code: Code,
) -> None:
    data = make()
    source = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    with pytest.raises(SlipwayError) as caught:
        tile_stored(source, len(data), prefix)
    assert caught.value.code == code and caught.value.permanent
    assert objects(prefix) == {}, "nothing half-written is visible"
    open_uploads = storage.list_multipart_uploads(os.environ["SLIPWAY_TILES_BUCKET"], prefix)
    assert list(open_uploads) == [], "the archive's multipart upload was aborted"


@pytest.mark.parametrize("layout", tilestore.LAYOUTS)
def test_retiling_converges_to_the_same_pyramid(layout: str) -> None:
    data = SOURCES["pyramidal tiff"](sample(900, 700))
    source = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    options = tiling.TileOptions(layout=layout)

    def pyramid() -> dict[str, bytes]:
        tilestore._index.cache_clear()
        return {name: read_tile(prefix, layout, name) for name in tile_names(prefix, layout)}

    first = tile_stored(source, len(data), prefix, options)
    tiles = pyramid()
    second = tile_stored(source, len(data), prefix, options)
    assert first == second
    assert pyramid() == tiles, "the same tiles, byte for byte"
    if layout == "files":
        assert len(objects(prefix)) == len(tiles) + 1  # the tiles and the descriptor, once


@pytest.mark.parametrize(("layout", "failing_put"), [("files", 40), ("archive", 1)])
def test_the_descriptor_is_written_only_after_every_tile(
    monkeypatch: pytest.MonkeyPatch, layout: str, failing_put: int
) -> None:
    real = storage.put_bytes
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == failing_put:  # a tile, or the (small, single-PUT) archive
            raise ConnectionError("storage hiccup")
        return real(*args)

    data = SOURCES["jpeg"](sample(3000, 2000))
    source = stored(data)
    monkeypatch.setattr(storage, "put_bytes", flaky)
    prefix = f"test-slides/{uuid.uuid4()}/"
    with pytest.raises(ConnectionError):
        tile_stored(source, len(data), prefix, tiling.TileOptions(layout=layout))
    assert tilestore.dzi_key(prefix) not in objects(prefix), "no descriptor for a partial pyramid"
    assert tilestore.archive_key(prefix) not in objects(prefix)


# hostile inputs through the whole stack: upload → verify → tile job ---------------------


def svg(side: int) -> bytes:
    """A tiny SVG declaring `side` × `side` pixels (libvips' svgload would render it)."""
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}"/>'.encode()


def png_bomb() -> bytes:
    """A 1-bit all-black PNG: 380 Mpx (inside the test stack's pixel budget of 400 Mpx) in
    about 46 KB, some 8,000 pixels per byte."""
    data: bytes = pyvips.Image.black(20_000, 19_000).pngsave_buffer(bitdepth=1, compression=9)
    return data


@pytest.mark.parametrize(
    ("make", "filename", "code"),
    [
        (lambda: svg(100_000).ljust(122), "slide.svg", Code.IMAGE_UNSUPPORTED),
        (lambda: svg(1_000), "slide.jpg", Code.IMAGE_UNSUPPORTED),  # named as a JPEG
        (lambda: sample().gifsave_buffer(), "slide.gif", Code.IMAGE_UNSUPPORTED),
        (png_bomb, "slide.png", Code.IMAGE_TOO_LARGE),
    ],
    ids=["svg-100000-px", "svg-named-jpg", "gif", "1-bit-png-bomb"],
)
def test_hostile_slides_fail_the_job_and_write_no_tile(
    client_for: Callable[..., Client], make: Callable[[], bytes], filename: str, code: Code
) -> None:
    alice = client_for("alice")
    data = make()
    upload_id = alice.upload_bytes("slide", filename, data, "image/jpeg")["uploadId"]
    slide = alice.wait_until(
        lambda: alice.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=120,
    )
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == code.value and slide["error"]["message"], slide
    job = alice.job(slide["jobId"])
    assert (job["status"], job["attemptCount"]) == ("FAILED", 1), "permanent: never retried"
    prefix = storage.slide_prefix(uuid.UUID(upload_id))
    assert objects(prefix) == {}, "no tile, archive or descriptor was written"
    assert list(storage.list_multipart_uploads(os.environ["SLIPWAY_TILES_BUCKET"], prefix)) == []
