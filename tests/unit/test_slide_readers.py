"""Slide-reading rules that need no storage: format detection, `source` from the file's
own tags, the display rendering of deep and multichannel images, the memory limits.
(tests/integration/test_slide_formats.py tiles every format through the real stack.)"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import pyvips
import tifffile

from slipway import config, slide_readers, slide_rendering, tiling
from slipway.errors import Code, SlipwayError
from tests.fixtures.slides import make_slides


class BytesReader:
    """What slide_readers reads from a storage.RangedReader, over bytes, in short blocks
    (as the real one returns: at most one block per read)."""

    def __init__(self, data: bytes, block: int = 1000) -> None:
        self.data, self.size, self.block = data, len(data), block
        self.position = 0
        self.error: BaseException | None = None

    def read(self, length: int = -1) -> bytes:
        length = self.size - self.position if length < 0 else length
        data = self.data[self.position : self.position + min(length, self.block)]
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = max(0, {0: 0, 1: self.position, 2: self.size}[whence] + offset)
        return self.position


def opened(data: bytes) -> slide_readers.Slide:
    return tiling.open_slide(BytesReader(data), len(data))  # type: ignore[arg-type]


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    config.settings.cache_clear()


def test_dicom_is_recognised_by_its_preamble_not_its_name() -> None:
    head = bytes(128) + b"DICM" + b"\x02\x00"
    assert tiling.sniff(head[: tiling.SNIFF_BYTES]) == "dicom"
    assert tiling.sniff(bytes(128) + b"DICX") is None


def test_the_aperio_description_gives_mpp_and_objective_power() -> None:
    slide = opened(make_slides.make_svs().data)
    source = slide.source
    assert (source["format"], source["vendor"], source["mppX"], source["objectivePower"]) == (
        "aperio-svs",
        "aperio",
        0.25,
        40.0,
    )
    assert slide.reader == "libvips", "JPEG tiles of 8-bit RGB: libvips streams level 0"
    assert set(slide.associated) == {"label", "macro", "thumbnail"}


@pytest.mark.parametrize("compression", [33003, 33005, "jpeg2000"])
def test_jpeg_2000_is_decoded_by_tifffile(compression: str | int) -> None:
    made = (
        make_slides.make_svs(compression)
        if isinstance(compression, int)
        else make_slides.make_pyramidal_tiff(compression)
    )
    slide = opened(made.data)
    assert slide.reader == "tifffile" and slide.decode is not None
    pixels = slide.decode().numpy()
    assert np.abs(pixels.astype(int) - made.expected).mean() < 0.5  # lossless J2K


def tiff_with(compression: int) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, np.zeros((64, 64), np.uint8), compression=compression)
    return out.getvalue()


@pytest.mark.parametrize("compression", [6, 34892, 50002])  # old JPEG, lossy JPEG, JPEG XL
def test_compressions_off_the_allow_list_are_unsupported(compression: int) -> None:
    data = bytearray(tiff_with(1))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tag = tif.pages.first.tags["Compression"]
        at = tag.valueoffset
    data[at : at + 2] = compression.to_bytes(2, "little")
    with pytest.raises(SlipwayError) as caught:
        opened(bytes(data))
    assert caught.value.code == Code.IMAGE_UNSUPPORTED
    assert str(compression) in caught.value.message


def test_a_screen_resolution_is_no_microns_per_pixel() -> None:
    def mpp(resolution: float) -> Any:
        out = io.BytesIO()
        tifffile.imwrite(
            out,
            np.zeros((8, 8, 3), np.uint8),
            resolution=(resolution, resolution),
            resolutionunit="CENTIMETER",
        )
        return opened(out.getvalue()).source["mppX"]

    assert mpp(40_000) == pytest.approx(0.25)  # 40,000 px/cm: a 40× scan
    assert mpp(72 / 2.54) is None  # 72 dpi: a default, not a measurement


def test_ome_colours_are_rgba_integers() -> None:
    assert [slide_readers._ome_colour(str(v)) for v in make_slides.FLUORESCENCE_COLOURS] == [
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
    ]
    assert slide_readers._ome_colour(None) is None
    assert slide_readers._ome_colour("red") is None


def test_each_channel_is_windowed_on_its_own_range() -> None:
    dim = np.linspace(100, 400, 200 * 100).reshape(100, 200).astype(np.uint16)
    bright = np.linspace(1000, 60000, 200 * 100).reshape(100, 200).astype(np.uint16)
    channels = np.stack([dim, bright], axis=-1)
    shown = slide_rendering.Rendering.from_sample(channels, [])(channels)
    assert shown.shape == (100, 200, 3) and shown.dtype == np.uint8
    for c, colour in enumerate(slide_rendering.PALETTE[:2]):
        band = int(np.argmax(colour))
        assert shown[0, 0, band] < 5 and shown[-1, -1, band] > 250, c  # full range each


def test_one_channel_stays_grey_and_rgb_keeps_its_balance() -> None:
    grey = np.arange(256 * 4, dtype=np.uint16).reshape(32, 32, 1)
    shown = slide_rendering.Rendering.from_sample(grey, [])(grey)
    assert shown.shape == (32, 32, 1)
    rgb = np.full((4, 4, 3), (65535, 32896, 0), np.uint16)
    pixels = slide_rendering.Rendering(rgb=True, bits=16)(rgb)
    assert pixels[0, 0].tolist() == [255, 128, 0], "16-bit RGB is scaled, not windowed"


def test_tifffile_decodes_strip_by_strip_and_a_late_error_fails_the_load() -> None:
    """A slide is streamed to libvips one row of tiles at a time; a tile that fails to
    decode after libvips began reading is kept on the slide and ends the input."""
    made = make_slides.make_pyramidal_tiff("jpeg2000")
    with tifffile.TiffFile(io.BytesIO(made.data)) as tif:
        page = tif.series[0].levels[0].keyframe
        offset, count = page.dataoffsets[-1], page.databytecounts[-1]
    data = made.data[: offset + 16] + bytes(count - 32) + made.data[offset + count - 16 :]
    slide = opened(data)
    assert slide.decode is not None
    image = slide.decode()  # the first strip is fine
    with pytest.raises(pyvips.Error):
        image.numpy()
    assert isinstance(slide.error, SlipwayError)
    assert slide.error.code == Code.IMAGE_UNREADABLE


def test_decoding_into_memory_is_bounded(limits: pytest.MonkeyPatch) -> None:
    limits.setenv("SLIPWAY_MAX_DECODED_BYTES", str(16 * 16 * 4 - 1))
    config.settings.cache_clear()
    slide = opened(make_slides.vendor_samples()["boxes_0.dcm"].read_bytes())
    assert slide.reader == "openslide" and slide.decode is not None
    with pytest.raises(SlipwayError) as caught:
        slide.decode()
    assert caught.value.code == Code.IMAGE_TOO_LARGE
    assert "SLIPWAY_MAX_DECODED_BYTES" in caught.value.message


def test_a_reader_that_needs_a_path_copies_only_up_to_the_limit(
    limits: pytest.MonkeyPatch,
) -> None:
    data = make_slides.vendor_samples()["boxes_0.dcm"].read_bytes()
    limits.setenv("SLIPWAY_MAX_LOCAL_COPY_BYTES", str(len(data) - 1))
    config.settings.cache_clear()
    with pytest.raises(SlipwayError) as caught:
        opened(data)
    assert caught.value.code == Code.IMAGE_TOO_LARGE
    assert "SLIPWAY_MAX_LOCAL_COPY_BYTES" in caught.value.message


def test_associated_images_are_png_for_the_label_and_jpeg_otherwise() -> None:
    label = np.full((20, 30, 3), 7, np.uint8)
    data, extension, media_type = slide_readers.encode_associated("label", label)
    assert (extension, media_type) == ("png", "image/png")
    assert np.array_equal(pyvips.Image.new_from_buffer(data, "").numpy(), label)
    assert slide_readers.encode_associated("macro", label)[1:] == ("jpg", "image/jpeg")
