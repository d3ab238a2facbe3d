"""Tiling rules that need no storage."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import pyvips

from slipway import config, tiling
from slipway.errors import Code, SlipwayError


@pytest.mark.parametrize(
    ("side", "levels"),
    [(1, 1), (2, 2), (3, 3), (1024, 11), (1025, 12), (1500, 12), (6000, 14), (200_000, 19)],
)
def test_deep_zoom_level_count(side: int, levels: int) -> None:
    assert tiling.levels_for(side, side // 2 or 1) == levels


def test_tile_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_TILE_FORMAT", "webp")
    monkeypatch.setenv("SLIPWAY_TILE_SIZE", "510")
    options = tiling.TileOptions.from_env()
    assert (options.format, options.tile_size, options.suffix) == ("webp", 510, ".webp[Q=85]")
    monkeypatch.setenv("SLIPWAY_TILE_FORMAT", "gif")
    with pytest.raises(ValueError, match="bad tile options"):
        tiling.TileOptions.from_env()


@pytest.mark.parametrize(
    "image",
    [
        pyvips.Image.black(8, 8, bands=4),  # RGBA, or unlabelled 4 bands
        pyvips.Image.black(8, 8, bands=4).copy(interpretation="cmyk"),
        pyvips.Image.black(8, 8, bands=5),
        pyvips.Image.black(8, 8).cast("ushort").copy(interpretation="grey16"),
        pyvips.Image.black(8, 8, bands=3).cast("float").copy(interpretation="scrgb"),
    ],
)
def test_images_become_displayable_8_bit(image: pyvips.Image) -> None:
    shown = tiling._displayable(image)
    assert shown.format == "uchar" and shown.bands in (1, 3)


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (pyvips.Image.black(8, 8).jpegsave_buffer(), "jpeg"),
        (pyvips.Image.black(8, 8).pngsave_buffer(), "png"),
        (pyvips.Image.black(8, 8).tiffsave_buffer(), "tiff"),
        (pyvips.Image.black(8, 8).tiffsave_buffer(bigtiff=True), "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),  # big-endian TIFF
        (pyvips.Image.black(8, 8).webpsave_buffer(), "webp"),
        (pyvips.Image.black(8, 8).gifsave_buffer(), None),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>', None),
        (b'<?xml version="1.0"?><svg/>', None),
        (b"%PDF-1.7", None),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
        (b"\xff\xd8", None),  # too short to be a JPEG
    ],
)
def test_the_format_is_judged_from_the_first_bytes(image: bytes, kind: str | None) -> None:
    assert tiling.sniff(image[: tiling.SNIFF_BYTES]) == kind


@pytest.mark.parametrize(
    "save",
    [
        lambda im: im.jpegsave_buffer(),
        lambda im: im.pngsave_buffer(),
        lambda im: im.tiffsave_buffer(tile=True, pyramid=True, compression="jpeg"),
        lambda im: im.tiffsave_buffer(bigtiff=True),
        lambda im: im.webpsave_buffer(),
    ],
)
def test_libvips_opens_each_allowed_format_with_the_expected_loader(
    save: Callable[[pyvips.Image], bytes],
) -> None:
    data = save(pyvips.Image.black(64, 64, bands=3))
    kind = tiling.sniff(data[: tiling.SNIFF_BYTES])
    assert kind is not None
    loaded = pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "")
    assert loaded.get("vips-loader") == tiling.LOADERS[kind]


@pytest.fixture
def default_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default pixel limits, whatever this process was started with."""
    monkeypatch.delenv("SLIPWAY_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.delenv("SLIPWAY_MAX_PIXELS_PER_BYTE", raising=False)
    monkeypatch.delenv("SLIPWAY_MAX_SINGLE_PASS_PIXELS", raising=False)
    config.settings.cache_clear()
    yield
    config.settings.cache_clear()


@pytest.mark.parametrize(
    ("width", "height", "size", "ok"),
    [
        (100_000, 200_000, 2_500_000_000, True),  # a big JPEG slide, 8 px/byte
        (400_000, 400_000, 20 * 2**30, True),  # a 20 GiB slide of 160 Gpx (fanned out)
        (500_000, 500_000 + 1, 20 * 2**30, False),  # over the pixel budget (250 Gpx)
        (40_000, 40_000, 1_600_000, True),  # 1,000 px/byte: the limit itself
        (40_000, 40_000, 1_599_999, False),  # a 1-bit PNG bomb is ~8,000 px/byte
        (10_000, 10_000, 67, True),  # small images are tiled whatever their bytes
    ],
)
def test_pixels_are_bounded_by_the_budget_and_by_the_bytes(
    default_limits: None, width: int, height: int, size: int, ok: bool
) -> None:
    if ok:
        tiling.check_pixels(width, height, size)
        return
    with pytest.raises(SlipwayError) as caught:
        tiling.check_pixels(width, height, size)
    assert caught.value.code == Code.IMAGE_TOO_LARGE and caught.value.permanent


def test_an_image_that_is_not_fanned_out_has_a_single_pass_limit(default_limits: None) -> None:
    tiling.check_single_pass(100_000, 200_000)
    with pytest.raises(SlipwayError) as caught:
        tiling.check_single_pass(100_000, 200_001)
    assert caught.value.code == Code.IMAGE_TOO_LARGE and "one pass" in caught.value.message


def test_the_pixels_per_byte_limit_is_configurable(
    default_limits: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SlipwayError):
        tiling.check_pixels(40_000, 40_000, 200_000)  # 8,000 px/byte
    monkeypatch.setenv("SLIPWAY_MAX_PIXELS_PER_BYTE", "10000")
    config.settings.cache_clear()
    tiling.check_pixels(40_000, 40_000, 200_000)
