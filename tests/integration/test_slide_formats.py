"""Whole-slide formats through the real stack, as a lab uploads them (upload → verify →
tile job → slide view): the pixels of several pyramid levels against the source's,
`source` from the file's own tags, associated images stored and served."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips
import requests
import tifffile

from slipway import slide_rendering, tiling
from slipway.client import Client
from slipway.errors import Code
from tests.fixtures.slides import make_slides

JPEG_TILE_MAE = 4.0  # JPEG Q85 tiles of smooth content, after the box filter of each level
SCAN_TILE_MAE = 8.0  # JPEG Q85 tiles of the vendor samples (all texture, or sharp boxes)


@pytest.fixture(scope="module")
def vendor() -> dict[str, Path]:
    return make_slides.vendor_samples()


@pytest.fixture
def lab(client_for: Callable[..., Client]) -> Client:
    return client_for("slide-lab")


def tiled(lab: Client, name: str, data: bytes) -> dict[str, Any]:
    """Upload a slide and wait for its tile job's end: the slide view."""
    upload_id = lab.upload_bytes("slide", name, data)["uploadId"]
    slide = lab.wait_until(
        lambda: lab.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=120,
    )
    slide["uploadId"] = upload_id
    return slide


def level_pixels(slide: dict[str, Any], level: int) -> np.ndarray[Any, Any]:
    """One Deep Zoom level, its tiles fetched as any client would and put together."""
    deepest = slide["levels"] - 1
    scale = 2 ** (deepest - level)
    width, height = -(-slide["width"] // scale), -(-slide["height"] // scale)
    size = slide["tileSize"]
    assert slide["overlap"] == 0 and size == tiling.TileOptions().tile_size
    base = slide["dziUrl"].removesuffix(".dzi") + "_files"
    out = np.zeros((height, width, 3), np.uint8)
    for row in range(-(-height // size)):
        for col in range(-(-width // size)):
            reply = requests.get(f"{base}/{level}/{col}_{row}.{slide['format']}", timeout=30)
            assert reply.status_code == 200, (level, col, row)
            tile = pyvips.Image.new_from_buffer(reply.content, "").numpy()
            tile = tile[:, :, None] if tile.ndim == 2 else tile
            y, x = row * size, col * size
            out[y : y + tile.shape[0], x : x + tile.shape[1]] = tile[:, :, :3]
    return out


def shrunk(image: np.ndarray[Any, Any], scale: int) -> np.ndarray[Any, Any]:
    """The box-filtered image at 1/scale (sides divisible by scale)."""
    h, w, c = image.shape
    blocks = image[: h - h % scale, : w - w % scale].astype(np.float64)
    return blocks.reshape(h // scale, scale, w // scale, scale, c).mean(axis=(1, 3))


def assert_levels_match(
    slide: dict[str, Any],
    expected: np.ndarray[Any, Any],
    bound: float = JPEG_TILE_MAE,
    shrinks: tuple[int, ...] = (0, 1, 3),
) -> None:
    """Full resolution, 1/2 and 1/8: mean absolute error under `bound`, per band."""
    deepest = slide["levels"] - 1
    for shrink in shrinks:
        got = level_pixels(slide, deepest - shrink).astype(np.float64)
        want = shrunk(expected, 2**shrink)
        got = got[: want.shape[0], : want.shape[1]]
        error = np.abs(got - want).mean(axis=(0, 1))
        assert (error < bound).all(), f"level 1/{2**shrink}: MAE per band {error}"


def fetch(url: str) -> np.ndarray[Any, Any]:
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 200, reply.text
    return np.asarray(pyvips.Image.new_from_buffer(reply.content, "").numpy())


def test_svs_with_jpeg_tiles_keeps_its_metadata_and_associated_images(lab: Client) -> None:
    svs = make_slides.make_svs("jpeg")
    slide = tiled(lab, "slide.svs", svs.data)
    assert slide["status"] == "SUCCEEDED", slide
    assert slide["source"] == {
        "format": "aperio-svs",
        "vendor": "aperio",
        "width": 1024,
        "height": 768,
        "levels": 2,
        "mppX": make_slides.SVS_MPP,
        "mppY": make_slides.SVS_MPP,
        "objectivePower": make_slides.SVS_MAG,
        "channels": [{"name": band, "bitsPerSample": 8} for band in "RGB"],
        "compression": "jpeg",
    }
    assert_levels_match(slide, svs.expected)
    assert set(slide["associated"]) == {"label", "macro", "thumbnail"}
    label = fetch(slide["associated"]["label"])
    assert np.array_equal(label, svs.extra["label"]), "the label is lossless (PNG)"
    for name in ("thumbnail", "macro"):
        got = fetch(slide["associated"][name]).astype(np.float64)
        assert np.abs(got - svs.extra[name]).mean() < JPEG_TILE_MAE, name


@pytest.mark.parametrize("compression", [33003, 33005])
def test_svs_with_jpeg_2000_tiles_is_tiled_with_the_right_pixels(
    lab: Client, compression: int
) -> None:
    svs = make_slides.make_svs(compression)
    slide = tiled(lab, "slide.svs", svs.data)
    assert slide["status"] == "SUCCEEDED", slide
    assert slide["source"]["format"] == "aperio-svs"
    assert slide["source"]["compression"].startswith("jpeg2000")
    assert slide["source"]["mppX"] == make_slides.SVS_MPP
    assert_levels_match(slide, svs.expected)
    assert set(slide["associated"]) == {"label", "macro", "thumbnail"}


def test_a_tiff_of_standard_jpeg_2000_tiles_is_not_black(lab: Client) -> None:
    tiff = make_slides.make_pyramidal_tiff("jpeg2000")  # compression 34712
    slide = tiled(lab, "slide.tif", tiff.data)
    assert slide["status"] == "SUCCEEDED", slide
    assert (slide["source"]["format"], slide["source"]["compression"]) == ("tiff", "jpeg2000")
    assert slide["source"]["levels"] == 3
    assert_levels_match(slide, tiff.expected)


@pytest.mark.parametrize("ome", [False, True], ids=["generic", "ome-rgb"])
def test_pyramidal_tiffs_keep_their_pixels(lab: Client, ome: bool) -> None:
    tiff = make_slides.make_pyramidal_tiff("jpeg", ome=ome)
    slide = tiled(lab, "slide.tif", tiff.data)
    assert slide["status"] == "SUCCEEDED", slide
    assert slide["source"]["format"] == ("ome-tiff" if ome else "tiff")
    assert slide["source"]["mppX"] == (0.5 if ome else None)
    assert_levels_match(slide, tiff.expected, bound=JPEG_TILE_MAE + 2)  # JPEG twice


def windowed(channel: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    lo, hi = np.percentile(channel, (0.1, 99.9))
    shown: np.ndarray[Any, Any] = np.clip(
        (channel.astype(np.float64) - lo) * 255 / (hi - lo), 0, 255
    )
    return shown


def test_16_bit_fluorescence_is_rendered_in_the_ome_colours(lab: Client) -> None:
    ome = make_slides.make_fluorescence()
    slide = tiled(lab, "fluo.ome.tif", ome.data)
    assert slide["status"] == "SUCCEEDED", slide
    source = slide["source"]
    assert (source["format"], source["mppX"], source["levels"]) == ("ome-tiff", 0.325, 3)
    assert source["channels"] == [
        {"name": name, "bitsPerSample": 16} for name in ("DAPI", "FITC", "TRITC")
    ]
    # the OME colours are red, green, blue: each channel, windowed on its own, is a band
    expected = np.stack([windowed(channel) for channel in ome.expected], axis=-1)
    assert_levels_match(slide, expected)
    full = level_pixels(slide, slide["levels"] - 1)
    for band in range(3):  # each channel visible: bright where it is, and varying
        assert full[:, :, band].max() > 200 and full[:, :, band].std() > 20, band


def test_16_bit_fluorescence_without_colours_gets_the_default_palette(lab: Client) -> None:
    ome = make_slides.make_fluorescence(colours=False)
    slide = tiled(lab, "fluo.ome.tif", ome.data)
    assert slide["status"] == "SUCCEEDED", slide
    palette = np.array(slide_palette(3), np.float64) / 255  # channel × RGB
    channels = np.stack([windowed(channel) for channel in ome.expected], axis=-1)
    expected = np.clip(channels @ palette, 0, 255)
    assert_levels_match(slide, expected)


def slide_palette(count: int) -> list[tuple[int, int, int]]:
    return list(slide_rendering.PALETTE[:count])


def test_vendor_samples_from_openslide(lab: Client, vendor: dict[str, Path]) -> None:
    svs = tiled(lab, "small.svs", vendor["small.svs"].read_bytes())
    assert svs["status"] == "SUCCEEDED", svs
    assert {k: svs["source"][k] for k in ("format", "vendor", "mppX", "objectivePower")} == {
        "format": "aperio-svs",
        "vendor": "aperio",
        "mppX": 0.499,
        "objectivePower": 20.0,
    }
    assert set(svs["associated"]) == {"thumbnail"}
    with tifffile.TiffFile(vendor["small.svs"]) as tif:
        reference = tif.series[0].asarray()  # an independent decoder of the same tiles
    assert_levels_match(svs, reference, SCAN_TILE_MAE)

    boxes = tiled(lab, "boxes.tiff", vendor["boxes.tiff"].read_bytes())
    assert boxes["status"] == "SUCCEEDED", boxes
    assert (boxes["source"]["format"], boxes["source"]["levels"]) == ("tiff", 4)
    # not 1/8: its boxes are then 1-2 px stripes, which JPEG itself blurs (MAE 15 measured)
    assert_levels_match(boxes, tifffile.imread(vendor["boxes.tiff"]), SCAN_TILE_MAE, (0, 1))


def test_dicom_wsi_is_tiled(lab: Client, vendor: dict[str, Path]) -> None:
    dicom = tiled(lab, "boxes_0.dcm", vendor["boxes_0.dcm"].read_bytes())
    assert dicom["status"] == "SUCCEEDED", dicom
    assert dicom["source"] == {
        "format": "dicom-wsi",
        "vendor": "dicom",
        "width": 16,
        "height": 16,
        "levels": 1,
        "mppX": 0.499,
        "mppY": 0.499,
        "objectivePower": 20.0,
        "channels": [{"name": band, "bitsPerSample": 8} for band in "RGB"],
        "compression": "jpeg",
    }
    with tifffile.TiffFile(vendor["small.svs"]) as tif:  # the same 16 × 16 scan
        reference = tif.series[0].asarray()
    got = level_pixels(dicom, dicom["levels"] - 1).astype(np.float64)
    assert np.abs(got - reference).mean() < SCAN_TILE_MAE


@pytest.mark.parametrize(
    ("name", "code", "says"),
    [
        ("unreadable.svs", Code.IMAGE_UNREADABLE, "Bogus marker length"),
        ("unopenable.tiff", Code.IMAGE_UNSUPPORTED, "compression 52479"),
        ("boxes_1.dcm", Code.IMAGE_UNREADABLE, "DICOM"),  # a thumbnail instance alone
    ],
)
def test_broken_vendor_samples_fail_with_a_code(
    lab: Client, vendor: dict[str, Path], name: str, code: Code, says: str
) -> None:
    slide = tiled(lab, name, vendor[name].read_bytes())
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == code.value and says in slide["error"]["message"], slide


def damaged_tile(data: bytes, tile: int) -> bytes:
    """A tile of level 0 overwritten with zeros, its length unchanged."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.series[0].levels[0].keyframe
        offset, count = page.dataoffsets[tile], page.databytecounts[tile]
    return data[: offset + 16] + bytes(count - 32) + data[offset + count - 16 :]


@pytest.mark.parametrize(
    ("make", "tile"),
    [
        (lambda: make_slides.make_svs(33005).data, 1),
        (lambda: make_slides.make_pyramidal_tiff("jpeg2000").data, 1),
        (lambda: make_slides.make_pyramidal_tiff("jpeg2000").data, -1),  # libvips reading
        (lambda: make_slides.make_fluorescence().data, -1),
        (lambda: make_slides.make_svs("jpeg").data, 1),
    ],
    ids=["svs-jpeg2000", "tiff-34712-first", "tiff-34712-last", "ome-16-bit", "svs-jpeg"],
)
def test_a_damaged_tile_fails_the_job_instead_of_a_wrong_pyramid(
    lab: Client, make: Callable[[], bytes], tile: int
) -> None:
    slide = tiled(lab, "slide.svs", damaged_tile(make(), tile))
    assert slide["status"] == "FAILED", slide
    assert slide["error"]["code"] == Code.IMAGE_UNREADABLE.value, slide
