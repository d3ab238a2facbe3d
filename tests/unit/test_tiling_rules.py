"""Tiling rules that need no storage."""

from __future__ import annotations

import pytest
import pyvips

from slipway import tiling


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
