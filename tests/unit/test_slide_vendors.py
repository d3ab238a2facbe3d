"""The vendor TIFF variants' metadata, with no storage: detection from the bytes,
`source` from each vendor's own tags, where each keeps its associated images, and the
MIRAX parts refused. (tests/integration/test_vendor_slides.py tiles them through the
stack against OpenSlide.)"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
import tifffile

from slipway import slide_vendors
from slipway.errors import Code, SlipwayError
from tests.fixtures.slides import make_slides
from tests.unit.test_slide_readers import opened

MAE = 4.0  # JPEG Q90 against the array written


@pytest.mark.parametrize(
    ("make", "kind", "associated"),
    [
        (make_slides.make_ndpi, "hamamatsu-ndpi", {"macro"}),
        (make_slides.make_philips, "philips-tiff", {"label", "macro"}),
        (make_slides.make_scn, "leica-scn", {"macro"}),
        (make_slides.make_bif, "ventana-bif", {"macro", "thumbnail"}),
    ],
    ids=["ndpi", "philips", "scn", "bif"],
)
def test_each_vendor_gives_its_mpp_objective_and_associated_images(
    make: Callable[[], make_slides.Slide], kind: str, associated: set[str]
) -> None:
    made = make()
    slide = opened(made.data)
    source = slide.source
    assert (source["format"], source["width"], source["height"], source["levels"]) == (
        kind,
        1024,
        768,
        3,
    )
    assert (source["mppX"], source["mppY"], source["objectivePower"]) == (
        make_slides.VENDOR_MPP,
        make_slides.VENDOR_MPP,
        make_slides.VENDOR_MAG,
    )
    assert set(slide.associated) == associated
    for name, pixels in slide.associated.items():
        assert np.abs(pixels.astype(float) - made.extra[name]).mean() < MAE, name
    assert slide.decode is not None
    pixels = slide.decode().numpy()
    assert np.abs(pixels.astype(float) - made.expected).mean() < MAE


def test_ndpi_is_recognised_by_its_64_bit_offset_layout() -> None:
    def layout(data: bytes) -> bool:
        file = io.BytesIO(data)
        return slide_vendors.ndpi_layout(slide_vendors.read_at(file), len(data))

    assert layout(make_slides.make_ndpi().data)
    assert not layout(make_slides.make_svs().data), "a classic TIFF"
    assert not layout(make_slides.make_philips().data), "a BigTIFF"
    assert not layout(b"II*\x00" + (1 << 40).to_bytes(8, "little"))


def test_the_leica_main_image_is_chosen_whatever_the_order() -> None:
    made = make_slides.make_scn()
    with tifffile.TiffFile(io.BytesIO(made.data)) as tif:
        assert tif.series[0].name == "macro", "tifffile lists the macro first"
        assert slide_vendors.main_series(tif).name == "main"


def philips_with(derivation: str) -> bytes:
    data = make_slides.make_philips().data
    old = b"tiff-useBigTIFF=1-useRgb=0-levels=20,10002,10000,10001"
    assert old in data
    return data.replace(old, derivation.encode().ljust(len(old), b"-"))


def test_the_philips_objective_is_the_first_plausible_levels_entry() -> None:
    assert opened(philips_with("levels=40,20")).source["objectivePower"] == 40.0
    assert opened(philips_with("levels=10003,10002")).source["objectivePower"] is None
    assert opened(philips_with("useRgb=0")).source["objectivePower"] is None


def test_a_bif_whose_tiles_overlap_is_unsupported() -> None:
    with pytest.raises(SlipwayError) as caught:
        opened(make_slides.make_bif(overlap=12).data)
    assert caught.value.code == Code.IMAGE_UNSUPPORTED
    assert "overlap" in caught.value.message


def test_a_leica_z_stack_is_unsupported_not_one_plane_silently() -> None:
    """tifffile raises NotImplementedError for these, or lists the first plane."""
    with pytest.raises(SlipwayError) as caught:
        opened(make_slides.make_scn(focal_planes=3).data)
    assert caught.value.code == Code.IMAGE_UNSUPPORTED
    assert "z-stack (3 focal planes)" in caught.value.message


@pytest.mark.parametrize("part", ["Slidedat.ini", "slide.zip"])
def test_the_parts_of_a_mirax_slide_are_unsupported(part: str) -> None:
    with pytest.raises(SlipwayError) as caught:
        opened(make_slides.make_mrxs_parts()[part])
    assert caught.value.code == Code.IMAGE_UNSUPPORTED
    assert caught.value.message.startswith("a MIRAX (.mrxs) slide is a folder")


def test_other_zips_and_text_are_just_not_images() -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", b"hello")
    for data in (zipped.getvalue(), b"[GENERAL]\r\nname = not a slide\r\n"):
        with pytest.raises(SlipwayError) as caught:
            opened(data)
        assert caught.value.code == Code.IMAGE_UNSUPPORTED
        assert caught.value.message.startswith("not a JPEG, PNG, TIFF"), caught.value.message


def test_a_sparse_philips_slide_is_unsupported_not_black() -> None:
    """Philips leaves out the tiles between scanned regions (OpenSlide: transparent)."""
    data = bytearray(make_slides.make_philips().data)
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tag = tif.pages.first.tags["TileByteCounts"]
        size = {4: 4, 16: 8}[int(tag.dtype)]  # LONG or LONG8 byte counts
        at = tag.valueoffset + size * 5
    data[at : at + size] = bytes(size)
    with pytest.raises(SlipwayError) as caught:
        opened(bytes(data))
    assert caught.value.code == Code.IMAGE_UNSUPPORTED
    assert "sparse" in caught.value.message
