"""The scanner vendors' TIFF variants (Hamamatsu NDPI, Philips TIFF, Leica SCN, Ventana
BIF) through the real stack, and MIRAX refused. The fixtures follow each vendor's
structure (make_slides); OpenSlide 4, which opens each as that vendor, is the independent
reference: its pixels (read_region, at several of its levels), its mpp and objective
power, and its associated images are what Slipway's tiles and `source` must agree with."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import tifffile

from slipway import slide_vendors
from slipway.client import Client
from slipway.errors import Code
from tests.fixtures.slides import make_slides
from tests.integration.test_slide_formats import (
    JPEG_TILE_MAE,
    assert_levels_match,
    fetch,
    level_pixels,
    tiled,
)

VENDORS: dict[str, tuple[Callable[[], make_slides.Slide], str, str, set[str]]] = {
    # fixture, `source.format`, OpenSlide's vendor, the associated images OpenSlide lists
    "ndpi": (make_slides.make_ndpi, "hamamatsu-ndpi", "hamamatsu", {"macro"}),
    "philips": (make_slides.make_philips, "philips-tiff", "philips", {"label", "macro"}),
    "scn": (make_slides.make_scn, "leica-scn", "leica", {"macro"}),
    "bif": (make_slides.make_bif, "ventana-bif", "ventana", {"macro", "thumbnail"}),
}


@pytest.fixture
def lab(client_for: Callable[..., Client]) -> Client:
    return client_for("vendor-lab")


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Callable[[bytes], openslide.OpenSlide]]:
    opened: list[openslide.OpenSlide] = []

    def open_(data: bytes) -> openslide.OpenSlide:
        path = tmp_path / f"slide-{len(opened)}"
        path.write_bytes(data)
        slide = openslide.OpenSlide(path)
        opened.append(slide)
        return slide

    yield open_
    for slide in opened:
        slide.close()


def region(slide: openslide.OpenSlide, level: int) -> np.ndarray[Any, Any]:
    """OpenSlide's pixels of the scanned region (the bounds, for Leica's collection) at
    one of its levels, RGB."""
    props = slide.properties
    x, y = int(props.get("openslide.bounds-x", 0)), int(props.get("openslide.bounds-y", 0))
    width = int(props.get("openslide.bounds-width", slide.dimensions[0]))
    height = int(props.get("openslide.bounds-height", slide.dimensions[1]))
    scale = round(slide.level_downsamples[level])
    size = (width // scale, height // scale)
    return np.asarray(slide.read_region((x, y), level, size).convert("RGB"))


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_tiffs_tile_like_openslide_reads_them(
    lab: Client, reference: Callable[[bytes], openslide.OpenSlide], vendor: str
) -> None:
    make, kind, openslide_vendor, associated = VENDORS[vendor]
    made = make()
    truth = reference(made.data)
    assert truth.properties["openslide.vendor"] == openslide_vendor, "the fixture is that vendor's"
    slide = tiled(lab, f"slide.{vendor}", made.data)
    assert slide["status"] == "SUCCEEDED", slide
    source = slide["source"]
    assert source == {
        "format": kind,
        "vendor": openslide_vendor,
        "width": 1024,
        "height": 768,
        "levels": 3,
        "mppX": float(truth.properties["openslide.mpp-x"]),
        "mppY": float(truth.properties["openslide.mpp-y"]),
        "objectivePower": float(truth.properties["openslide.objective-power"]),
        "channels": [{"name": band, "bitsPerSample": 8} for band in "RGB"],
        "compression": "jpeg",
    }
    assert (source["mppX"], source["objectivePower"]) == (
        make_slides.VENDOR_MPP,
        make_slides.VENDOR_MAG,
    )
    # OpenSlide's level 0 through Slipway's full resolution, 1/2 and 1/8; the array written
    assert_levels_match(slide, region(truth, 0))
    assert_levels_match(slide, made.expected)
    # OpenSlide's own reduced levels (the file's pyramid) against the matching DZI levels
    deepest = slide["levels"] - 1
    for level in (1, 2):
        want = region(truth, level).astype(np.float64)
        shrink = round(truth.level_downsamples[level]).bit_length() - 1
        got = level_pixels(slide, deepest - shrink)[: want.shape[0], : want.shape[1]]
        error = np.abs(got - want).mean(axis=(0, 1))
        assert (error < JPEG_TILE_MAE + 2).all(), f"OpenSlide level {level}: MAE {error}"
    # the associated images OpenSlide finds, stored and served
    assert set(slide["associated"]) == associated == set(truth.associated_images)
    for name in associated:
        want = np.asarray(truth.associated_images[name].convert("RGB"), np.float64)
        got = fetch(slide["associated"][name])[:, :, :3]
        assert got.shape == want.shape, name
        assert np.abs(got - want).mean() < JPEG_TILE_MAE, name


def test_the_leica_macro_is_not_mistaken_for_the_slide(lab: Client) -> None:
    """tifffile lists the SCN macro image first; the slide is the main image."""
    scn = make_slides.make_scn()
    slide = tiled(lab, "slide.scn", scn.data)
    assert slide["status"] == "SUCCEEDED", slide
    assert (slide["width"], slide["height"]) == scn.expected.shape[1::-1]
    macro = fetch(slide["associated"]["macro"]).astype(np.float64)
    assert np.abs(macro - scn.extra["macro"]).mean() < JPEG_TILE_MAE
    assert_levels_match(slide, scn.expected, shrinks=(3,))


def damaged_level0_tile(data: bytes, tile: int) -> bytes:
    """A level-0 tile of the slide's main image overwritten with zeros."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = slide_vendors.main_series(tif).levels[0].keyframe
        offset, count = page.dataoffsets[tile], page.databytecounts[tile]
    return data[: offset + 16] + bytes(count - 32) + data[offset + count - 16 :]


def truncated(data: bytes) -> bytes:
    """The file cut in the middle of level 0's tiles (the directories after it lost)."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = slide_vendors.main_series(tif).levels[0].keyframe
        return data[: page.dataoffsets[len(page.dataoffsets) // 2] + 10]


@pytest.mark.parametrize(
    ("vendor", "damage"),
    [
        ("ndpi", truncated),
        ("ndpi", lambda data: damaged_level0_tile(data, 1)),
        ("philips", truncated),
        ("philips", lambda data: damaged_level0_tile(data, 1)),
        ("scn", lambda data: damaged_level0_tile(data, 1)),
        ("bif", lambda data: damaged_level0_tile(data, 1)),
        ("bif", truncated),
    ],
    ids=[
        "ndpi-cut",
        "ndpi-interval",
        "philips-cut",
        "philips-tile",
        "scn-tile",
        "bif-tile",
        "bif-cut",
    ],
)
def test_a_damaged_vendor_tiff_fails_on_the_first_attempt(
    lab: Client, vendor: str, damage: Callable[[bytes], bytes]
) -> None:
    slide = tiled(lab, f"slide.{vendor}", damage(VENDORS[vendor][0]().data))
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == Code.IMAGE_UNREADABLE.value, slide
    job = lab.job(lab.upload(slide["uploadId"])["jobs"][0]["jobId"])
    assert job["attemptCount"] == 1, job


def test_a_ventana_bif_with_overlapping_tiles_is_unsupported_not_misplaced(
    lab: Client, reference: Callable[[bytes], openslide.OpenSlide]
) -> None:
    bif = make_slides.make_bif(overlap=12)
    assert reference(bif.data).dimensions[0] < 1024, "OpenSlide stitches it narrower"
    slide = tiled(lab, "slide.bif", bif.data)
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == Code.IMAGE_UNSUPPORTED.value
    assert "overlap" in slide["error"]["message"], slide


@pytest.mark.parametrize("part", ["Slidedat.ini", "slide.zip"])
def test_a_mirax_slide_is_refused_with_what_to_do(lab: Client, part: str) -> None:
    slide = tiled(lab, part, make_slides.make_mrxs_parts()[part])
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == Code.IMAGE_UNSUPPORTED.value
    assert slide["error"]["message"].startswith("a MIRAX (.mrxs) slide is a folder"), slide
