"""NDPI's restart-interval JPEG decoded strictly (slipway/ndpi.py): the same pixels as
tifffile, and damage that tifffile's decode lets through fails with IMAGE_UNREADABLE.
(tests/integration/test_vendor_slides.py tiles a damaged NDPI through the stack.)"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from slipway import ndpi, slide_readers, slide_vendors
from slipway.errors import Code, SlipwayError
from tests.fixtures.slides import make_slides


@pytest.fixture(scope="module")
def slide() -> bytes:
    return make_slides.make_ndpi(2048, 1024).data


def level0(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Level 0 strip by strip, and a rectangle of it, as Slipway reads them."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        level = slide_readers.LevelReader(tif, slide_vendors.main_series(tif).levels[0])
        assert level.restart_tiled
        whole = np.concatenate(list(level.strips()))
        part = np.concatenate(list(level.window(300, 100, 900, 333)))
        return whole, part


def intervals(data: bytes) -> list[tuple[int, int]]:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        return list(zip(page.dataoffsets, page.databytecounts, strict=True))


def test_the_pixels_are_tifffiles(slide: bytes) -> None:
    whole, part = level0(slide)
    with tifffile.TiffFile(io.BytesIO(slide)) as tif:
        reference = tif.pages[0].asarray()
    assert np.array_equal(whole, reference)
    assert np.array_equal(part, reference[100:433, 300:1200])


def damaged(data: bytes, start: int, end: int, fill: bytes | None = None) -> bytes:
    out = bytearray(data)
    out[start:end] = fill if fill is not None else bytes(end - start)
    return bytes(out)


def assert_unreadable(data: bytes) -> SlipwayError:
    with pytest.raises(SlipwayError) as raised:
        level0(data)
    assert raised.value.code == Code.IMAGE_UNREADABLE
    return raised.value


def test_zeros_inside_an_interval_fail_though_tifffile_decodes_them(slide: bytes) -> None:
    offset, count = intervals(slide)[40]
    broken = damaged(slide, offset + 16, offset + count - 16)
    with tifffile.TiffFile(io.BytesIO(broken)) as tif:
        tif.pages[0].asarray()  # what Slipway used before: no error
    assert "corrupt JPEG data" in str(assert_unreadable(broken))


def test_a_missing_or_misnumbered_restart_marker_fails(slide: bytes) -> None:
    offset, count = intervals(slide)[9]  # ends with RST1
    assert_unreadable(damaged(slide, offset + count - 2, offset + count))
    error = assert_unreadable(damaged(slide, offset + count - 1, offset + count, b"\xd5"))
    assert "restart interval 9" in str(error)


def test_the_last_interval_of_a_strip_is_checked_too(slide: bytes) -> None:
    """libvips checks warnings only between batches of rows: the padding row makes the
    last interval of every decoded rectangle count."""
    spots = intervals(slide)
    across = 2048 // 128
    for index in (across * 8 - 1, len(spots) - 1):  # a strip's last, the level's last
        offset, count = spots[index]
        assert_unreadable(damaged(slide, offset + 20, offset + count - 20))


def test_random_runs_of_zeros_are_all_found(slide: bytes) -> None:
    rng = np.random.default_rng(2026)
    spots = intervals(slide)
    for _ in range(20):
        offset, count = spots[int(rng.integers(len(spots)))]
        start = offset + int(rng.integers(count - 8))
        assert_unreadable(
            damaged(slide, start, min(start + int(rng.integers(4, 64)), offset + count - 2))
        )


@pytest.mark.parametrize(
    "make", [make_slides.make_svs, make_slides.make_philips, make_slides.make_scn]
)
def test_other_jpeg_tiffs_do_not_take_this_path(make) -> None:  # type: ignore[no-untyped-def]
    with tifffile.TiffFile(io.BytesIO(make().data)) as tif:
        assert not ndpi.is_restart_tiled(slide_vendors.main_series(tif).levels[0].keyframe)
