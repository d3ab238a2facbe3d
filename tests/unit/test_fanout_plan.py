"""The fan-out's plan (slipway.fanout.plan) and how a fanned-out index names the region
that holds a tile (tilestore.region_index): pure parts, no servers."""

from __future__ import annotations

import itertools

import pytest

from slipway import fanout, tilestore

T = 256


@pytest.mark.parametrize(
    ("width", "height", "region_pixels"),
    [
        (50_000, 50_000, 50_000**2 // 4),  # the benchmark's
        (390_000, 390_000, 2_000_000_000),  # ~150 Gpx, a 20 GiB slide
        (150_000, 80_000, 2_000_000_000),
        (100_001, 3_333, 50_000_000),  # a strip of a slide, odd sizes
        (3000, 2200, 2_000_000),
    ],
)
def test_regions_tile_level_0_exactly_on_block_boundaries(
    width: int, height: int, region_pixels: int
) -> None:
    layout = fanout.plan(width, height, T, region_pixels)
    block = layout.block
    covered = sum(r.pixels for r in layout.regions)
    assert covered == width * height
    for r in layout.regions:
        assert r.x % block == 0 and r.y % block == 0
        assert r.x + r.width == width or r.width % block == 0
        assert r.y + r.height == height or r.height % block == 0
        assert fanout.levels_for(r.width, r.height) > layout.depth, "its levels exist"
    xs = sorted({(r.x, r.x + r.width) for r in layout.regions})
    assert all(a[1] == b[0] for a, b in itertools.pairwise(xs)), "no gap, no overlap"
    assert [r.index for r in layout.regions] == list(range(len(layout.regions)))


def test_four_regions_share_the_work_evenly() -> None:
    layout = fanout.plan(50_000, 50_000, T, 50_000**2 // 4)
    assert len(layout.regions) == 4
    assert max(r.pixels for r in layout.regions) / 50_000**2 <= 0.3


def test_a_20_gib_slide_is_regions_of_about_the_target_size() -> None:
    layout = fanout.plan(390_000, 390_000, T, 2_000_000_000)
    shares = [r.pixels for r in layout.regions]
    assert 70 <= len(shares) <= 90
    assert max(shares) / min(shares) < 1.6
    assert max(shares) < 3_000_000_000
    apex = (390_000 >> layout.depth) ** 2
    assert apex < 200_000_000, "the finish job's image stays small"


def test_a_plan_survives_its_json() -> None:
    layout = fanout.plan(10_000, 7_000, T, 20_000_000, depth=2)
    assert fanout.Plan.from_json(layout.to_json()) == layout


def test_a_tile_is_found_in_the_region_that_holds_its_top_left_pixel() -> None:
    layout = fanout.plan(3000, 2200, T, 2_000_000, depth=2)
    index = {
        "levels": layout.levels,
        "depth": 2,
        "tileSize": T,
        "regions": [
            {"x": r.x, "y": r.y, "width": r.width, "height": r.height, "index": f"r{r.index}"}
            for r in layout.regions
        ],
    }
    top = layout.levels - 1
    assert tilestore.region_index(index, top, "0_0.jpeg") == "r0"
    assert tilestore.region_index(index, top, "4_0.jpeg") == "r1"  # x = 1024
    assert tilestore.region_index(index, top, "3_4.jpeg") == "r2"  # y = 1024
    assert tilestore.region_index(index, top - 2, "1_1.jpeg") == "r3"  # 4 tiles per block
    assert tilestore.region_index(index, top - 3, "0_0.jpeg") is None  # the finish's level
    assert tilestore.region_index({"tiles": {}}, top, "0_0.jpeg") is None  # one archive
