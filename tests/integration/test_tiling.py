"""Tiling straight from S3 to S3 (ranged reads in, streamed tile PUTs out), real storage."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pyvips

from slipway import slides, storage, tiling
from slipway.errors import Code, SlipwayError
from slipway.jobs import Job
from slipway.worker import Lease


def lease() -> Lease:
    now = datetime.now(UTC)
    job = Job(
        uuid.uuid4(),
        "tile",
        "t",
        None,
        "RUNNING",
        {},
        1,
        3,
        "t",
        None,
        None,
        None,
        None,
        now,
        now,
        now,
        None,
    )
    return Lease(job, "tester", 60)


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


def tile_bytes(
    data: bytes, options: tiling.TileOptions | None = None
) -> tuple[dict[str, Any], str]:
    bucket, key = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    result = tiling.tile(
        bucket,
        key,
        len(data),
        os.environ["SLIPWAY_TILES_BUCKET"],
        prefix,
        lease(),
        options or tiling.TileOptions(),
    )
    return result, prefix


def objects(prefix: str) -> dict[str, int]:
    return {k: size for k, size, _ in storage.list_keys(os.environ["SLIPWAY_TILES_BUCKET"], prefix)}


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


@pytest.mark.parametrize("kind", list(SOURCES))
def test_formats_become_a_complete_deep_zoom_pyramid(kind: str) -> None:
    result, prefix = tile_bytes(SOURCES[kind](sample()))
    assert (result["width"], result["height"], result["levels"]) == (1500, 1000, 12)
    found = objects(prefix)
    tiles = [k for k in found if re.search(r"slide_files/\d+/\d+_\d+\.jpeg$", k)]
    assert len(tiles) == result["tileCount"] > 0
    descriptor = storage.read_bytes(os.environ["SLIPWAY_TILES_BUCKET"], slides.dzi_key(prefix))
    assert b'Width="1500"' in descriptor and b'TileSize="254"' in descriptor
    deepest = [k for k in tiles if "/slide_files/11/" in k]
    assert len(deepest) == 6 * 4  # ceil(1500/254) × ceil(1000/254)
    tile = pyvips.Image.new_from_buffer(
        storage.read_bytes(os.environ["SLIPWAY_TILES_BUCKET"], deepest[0]), ""
    )
    assert tile.bands == 3 and tile.width in (255, 256)


def test_tile_options_are_honoured() -> None:
    options = tiling.TileOptions(tile_size=512, overlap=0, format="webp", quality=70)
    result, prefix = tile_bytes(SOURCES["jpeg"](sample()), options)
    assert result["format"] == "webp"
    assert all(k.endswith((".webp", ".dzi")) for k in objects(prefix))
    assert len([k for k in objects(prefix) if "/slide_files/11/" in k]) == 3 * 2


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: SOURCES["jpeg"](sample())[:20_000], Code.IMAGE_UNREADABLE),  # truncated
        (lambda: SOURCES["png"](sample())[:5_000], Code.IMAGE_UNREADABLE),
        (lambda: b"%PDF-1.4 definitely not an image" * 50, Code.IMAGE_UNREADABLE),
        (lambda: b"\x00", Code.IMAGE_UNREADABLE),
        (lambda: b"", Code.IMAGE_UNREADABLE),  # zero bytes
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
    bucket, key = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    with pytest.raises(SlipwayError) as caught:
        tiling.tile(
            bucket,
            key,
            len(data),
            os.environ["SLIPWAY_TILES_BUCKET"],
            prefix,
            lease(),
            tiling.TileOptions(),
        )
    assert caught.value.code == code and caught.value.permanent
    assert slides.dzi_key(prefix) not in objects(prefix)


def test_retiling_converges_to_the_same_pyramid() -> None:
    data = SOURCES["pyramidal tiff"](sample(900, 700))
    bucket, key = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    out = os.environ["SLIPWAY_TILES_BUCKET"]
    first = tiling.tile(bucket, key, len(data), out, prefix, lease(), tiling.TileOptions())
    etags = {k: storage.head(out, k).etag for k in objects(prefix)}  # type: ignore[union-attr]
    second = tiling.tile(bucket, key, len(data), out, prefix, lease(), tiling.TileOptions())
    assert first == second
    assert {k: storage.head(out, k).etag for k in objects(prefix)} == etags  # type: ignore[union-attr]


def test_the_descriptor_is_written_only_after_every_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    real_put = storage.put_bytes
    calls = {"n": 0}

    def flaky_put(bucket: str, key: str, data: bytes, content_type: str) -> None:
        calls["n"] += 1
        if calls["n"] == 40:
            raise ConnectionError("storage hiccup")
        real_put(bucket, key, data, content_type)

    monkeypatch.setattr(storage, "put_bytes", flaky_put)
    data = SOURCES["jpeg"](sample())
    bucket, key = stored(data)
    prefix = f"test-slides/{uuid.uuid4()}/"
    with pytest.raises(ConnectionError):
        tiling.tile(
            bucket,
            key,
            len(data),
            os.environ["SLIPWAY_TILES_BUCKET"],
            prefix,
            lease(),
            tiling.TileOptions(),
        )
    assert slides.dzi_key(prefix) not in objects(prefix), "no descriptor for a partial pyramid"
