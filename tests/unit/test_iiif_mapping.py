"""The IIIF → DZI tile mapping (slides._dzi_tile_of) over many image sizes: every tile and
size info.json lists is one DZI tile, every DZI tile is listed exactly once, and nothing
else is accepted. The same against the real stack: tests/e2e/test_slide_serving.py."""

from __future__ import annotations

import math
from typing import Any

import pytest

from slipway import slides
from slipway.errors import SlipwayError

TILE = 256


def slide(width: int, height: int) -> dict[str, Any]:
    levels = math.ceil(math.log2(max(width, height))) + 1
    return {"width": width, "height": height, "tile_size": TILE, "levels": levels}


def dzi_tiles(s: dict[str, Any]) -> set[tuple[int, str]]:
    out = set()
    for level in range(s["levels"]):
        scale = 2 ** (s["levels"] - 1 - level)
        w, h = math.ceil(s["width"] / scale), math.ceil(s["height"] / scale)
        for col in range(math.ceil(w / TILE)):
            for row in range(math.ceil(h / TILE)):
                out.add((level, f"{col}_{row}"))
    return out


def client_requests(info: dict[str, Any]) -> list[tuple[str, str]]:
    """What a client derives from info.json (Image API 3.0, appendix A), region and size."""
    width, height = info["width"], info["height"]
    out = []
    for s in info["tiles"][0]["scaleFactors"]:
        span = TILE * s
        for y in range(0, height, span):
            for x in range(0, width, span):
                w, h = min(span, width - x), min(span, height - y)
                out.append((f"{x},{y},{w},{h}", f"{math.ceil(w / s)},{math.ceil(h / s)}"))
    return out


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (255, 3), (256, 256), (257, 256), (1100, 700), (4097, 3001)]
)
def test_listed_tiles_and_dzi_tiles_are_one_to_one(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    s = slide(width, height) | {"overlap": 0, "format": "jpeg"}
    monkeypatch.setattr(slides, "_tiled", lambda upload_id, token: s)
    info = slides.iiif_info(None, "t", "https://x/iiif/t")  # type: ignore[arg-type]
    mapped = [slides._dzi_tile_of(s, region, size) for region, size in client_requests(info)]
    assert len(mapped) == len(set(mapped)) and set(mapped) == dzi_tiles(s)
    for entry in info["sizes"]:  # the whole image, one tile each: level by its size
        level, position = slides._dzi_tile_of(s, "full", f"{entry['width']},{entry['height']}")
        assert position == "0_0"
        scale = 2 ** (s["levels"] - 1 - level)
        assert (math.ceil(width / scale), math.ceil(height / scale)) == (
            entry["width"],
            entry["height"],
        )


@pytest.mark.parametrize(
    ("region", "size", "status"),
    [
        ("0,0,256,256", "pct:50", 400),
        ("0,0,256", "256,256", 400),
        ("-1,0,256,256", "256,256", 400),
        ("0,0,256,256", "^256,256", 400),
        ("256,0,256,256", "128,128", 404),  # right place, wrong size
        ("128,0,256,256", "256,256", 404),  # off the grid
        ("0,0,512,512", "512,512", 404),  # a tile at s=2 is 256 px: no upscaling
        ("0,0,0,0", "0,0", 404),
        ("1100,0,256,256", "256,256", 404),  # starts beyond the image
        ("full", "max", 404),  # 1100 px wide: no single tile
    ],
)
def test_other_requests_are_refused(region: str, size: str, status: int) -> None:
    with pytest.raises(SlipwayError) as refused:
        slides._dzi_tile_of(slide(1100, 700), region, size)
    assert refused.value.status == status
