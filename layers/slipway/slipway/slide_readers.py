"""Reading whole-slide files: which reader decodes the pixels, what the file says about
itself (`source`), and its associated images (label, macro, thumbnail).

- TIFF family (Aperio SVS, NDPI, OME-TIFF, Philips, Leica SCN, Ventana BIF, generic
  pyramidal TIFF): tifffile reads the structure through ranged GETs (no local copy).
  Level 0 in a layout libvips decodes right (8-bit grey/RGB, JPEG/LZW/deflate/none) is
  left to libvips, streaming; anything else (JPEG 2000 33003/33005/34712, 16-bit,
  multichannel fluorescence, NDPI) is decoded by tifffile + imagecodecs a row of tiles at
  a time (on every core; NDPI's restart-interval JPEG strictly, by `slipway.ndpi`),
  rendered for display and streamed to libvips (`slipway.slide_rendering`); a region of
  a fanned-out slide reads only its own tiles (`LevelReader.window`). Vendor specifics
  (which series is the slide, their metadata and associated images) are in
  `slipway.slide_vendors`.
- DICOM WSI: OpenSlide, from a local copy (`slipway.slide_dicom`).
See docs/tiling.md for the measurements behind the choice.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import IO, Any, cast

import numpy as np
import pyvips
import tifffile
from defusedxml import ElementTree as SafeET

from slipway import ndpi, slide_vendors, storage
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.slide_rendering import WINDOW_PIXELS, Rendering, png_stream

log = logging.getLogger(__name__)

# TIFF compressions Slipway decodes (the allow-list), with the name `source` reports.
COMPRESSIONS = {
    1: "none",
    5: "lzw",
    7: "jpeg",
    8: "deflate",
    32946: "deflate",
    32773: "packbits",
    33003: "jpeg2000-ycbcr",  # Aperio
    33005: "jpeg2000-rgb",  # Aperio
    34712: "jpeg2000",
    50000: "zstd",
    50001: "webp",
}
LIBVIPS_COMPRESSIONS = {1, 5, 7, 8, 32946, 32773}  # what the bundled libvips decodes right
LIBVIPS_PHOTOMETRICS = {
    tifffile.PHOTOMETRIC.MINISBLACK,
    tifffile.PHOTOMETRIC.MINISWHITE,
    tifffile.PHOTOMETRIC.RGB,
    tifffile.PHOTOMETRIC.YCBCR,
    tifffile.PHOTOMETRIC.PALETTE,
    tifffile.PHOTOMETRIC.SEPARATED,
}
DTYPES = {"uint8", "uint16", "int16", "uint32", "float32"}
ASSOCIATED = ("label", "macro", "thumbnail")
ASSOCIATED_MAX_PIXELS = 50_000_000  # a macro photo of a whole slide is a few Mpx
MAX_RESOLUTION_MPP = 50.0  # coarser is a screen default (72 dpi is 353 µm), not a scan
UNITS_IN_UM = {"nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


@dataclass
class Slide:
    """What a reader found, no pixel of level 0 decoded yet: `decode` returns it (once the
    size is checked), None when libvips is to stream level 0 itself."""

    source: dict[str, Any]
    decode: Callable[[], pyvips.Image] | None = None
    # level 0's rectangle (x, y, width, height) alone, reading only its tiles: set for the
    # readers with random access (TIFF family), what a fanned-out region decodes
    window: Callable[[int, int, int, int], pyvips.Image] | None = None
    reader: str = "libvips"  # which decodes level 0: libvips, tifffile or openslide
    error: BaseException | None = None  # what failed while libvips read a decoded stream
    associated: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    close: list[Callable[[], None]] = field(default_factory=list)


class FileView(io.RawIOBase):
    """A RangedReader as a seekable binary file (what tifffile reads)."""

    def __init__(self, reader: storage.RangedReader) -> None:
        self.reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fills `buffer` up to the end of the object (a RangedReader read stops at the end
        of its block; tifffile expects whole reads)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            data = self.reader.read(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
        return filled

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(self.reader.size - self.reader.position, 0)
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.reader.seek(offset, whence)

    def tell(self) -> int:
        return self.reader.position


def source_object(**known: Any) -> dict[str, Any]:
    """API.md's `source`, every unknown value null."""
    keys = "format vendor width height levels mppX mppY objectivePower channels compression"
    return {key: known.get(key) for key in keys.split()}


def _unreadable(what: str, exc: BaseException) -> SlipwayError:
    return SlipwayError(Code.IMAGE_UNREADABLE, f"{what}: {str(exc)[:300] or type(exc).__name__}")


def check_decoded(shape: tuple[int, ...], dtype: Any) -> None:
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    limit = settings().max_decoded_bytes
    if size > limit:
        raise SlipwayError(
            Code.IMAGE_TOO_LARGE,
            f"decoding this slide's full resolution takes {size} bytes of memory, over the "
            f"limit of {limit} (SLIPWAY_MAX_DECODED_BYTES)",
        )


# TIFF family -------------------------------------------------------------------------


def read_tiff(reader: storage.RangedReader) -> Slide:
    try:
        view = cast(IO[bytes], FileView(reader))
        ndpi = slide_vendors.ndpi_layout(slide_vendors.read_at(view), reader.size)
        view.seek(0)
        tif = tifffile.TiffFile(view, is_ndpi=True) if ndpi else tifffile.TiffFile(view)
        series = slide_vendors.main_series(tif)
        level0 = series.levels[0]
        page = level0.keyframe
    except SlipwayError:
        raise
    except NotImplementedError as exc:  # tifffile knows the layout and does not read it
        message = f"a TIFF layout Slipway does not read: {str(exc)[:200]}"
        raise SlipwayError(Code.IMAGE_UNSUPPORTED, message) from exc
    except Exception as exc:
        if reader.error is not None:
            raise reader.error from exc
        raise _unreadable("not a readable TIFF", exc) from exc
    try:
        code = int(page.compression)
        if code not in COMPRESSIONS:
            raise SlipwayError(
                Code.IMAGE_UNSUPPORTED,
                f"TIFF compression {code} ({_compression_name(code)}) is not one Slipway decodes",
            )
        if page.dtype is None or page.dtype.name not in DTYPES:
            raise SlipwayError(Code.IMAGE_UNSUPPORTED, f"TIFF samples of type {page.dtype}")
        slide = Slide(_tiff_source(tif, series), close=[tif.close])
        slide.associated = _tiff_associated(tif, slide.source["format"])
    except BaseException:
        tif.close()
        raise
    if not _libvips_reads(tif, series, page):
        slide.decode = lambda: _decode_tiff(slide, tif, series, reader)
        slide.window = lambda *box: _decode_tiff(slide, tif, series, reader, box)
        slide.reader = "tifffile"
    return slide


def _compression_name(code: int) -> str:
    try:
        return tifffile.COMPRESSION(code).name.lower()
    except ValueError:
        return "unknown"


def _libvips_reads(tif: tifffile.TiffFile, series: Any, page: Any) -> bool:
    """Level 0 is the first page, in a layout the bundled libvips decodes right."""
    return (
        not tif.is_ndpi
        and page is tif.pages.first
        and int(page.compression) in LIBVIPS_COMPRESSIONS
        and page.dtype == np.uint8
        and page.samplesperpixel in (1, 2, 3, 4)  # alpha is flattened, CMYK made sRGB
        and page.planarconfig == tifffile.PLANARCONFIG.CONTIG
        and page.photometric in LIBVIPS_PHOTOMETRICS
        and int(np.prod(series.shape)) == int(np.prod(page.shape))  # one plane, no channels
    )


def _tiff_format(tif: tifffile.TiffFile) -> tuple[str, str | None]:
    for flag, name, vendor in (
        ("is_svs", "aperio-svs", "aperio"),
        ("is_ndpi", "hamamatsu-ndpi", "hamamatsu"),
        ("is_ome", "ome-tiff", None),
        ("is_philips", "philips-tiff", "philips"),
        ("is_scn", "leica-scn", "leica"),
        ("is_bif", "ventana-bif", "ventana"),
    ):
        if getattr(tif, flag, False):
            return name, vendor
    return "tiff", None


def _tiff_source(tif: tifffile.TiffFile, series: Any) -> dict[str, Any]:
    page = series.levels[0].keyframe
    kind, vendor = _tiff_format(tif)
    mpp_x, mpp_y = _resolution_mpp(page)
    power: float | None = None
    bits = int(page.bitspersample)
    if page.samplesperpixel >= 3 and page.photometric in (
        tifffile.PHOTOMETRIC.RGB,
        tifffile.PHOTOMETRIC.YCBCR,
    ):
        names: list[str | None] = [*"RGB", *"A" * (page.samplesperpixel - 3)]
    else:
        names = [None] * _channel_count(series)
    if kind == "aperio-svs":
        try:
            meta = tifffile.tifffile.svs_description_metadata(page.description)
        except ValueError:  # an Aperio header without key = value pairs
            meta = {}
        mpp = meta.get("MPP")
        mpp_x = mpp_y = float(mpp) if isinstance(mpp, int | float) and mpp > 0 else None
        mag = meta.get("AppMag")
        power = float(mag) if isinstance(mag, int | float) else None
    elif kind == "ome-tiff":
        ome = _ome(tif)
        mpp_x, mpp_y = ome["mpp"]
        if ome["names"] and len(ome["names"]) == len(names):
            names = list(ome["names"])
    else:  # NDPI, Philips, Leica, Ventana: their own tags, X/YResolution where silent
        found = slide_vendors.vendor_source(tif, kind, series)
        mpp_x = found.get("mppX") or mpp_x
        mpp_y = found.get("mppY") or mpp_y
        power = found.get("objectivePower")
    height, width = _plane_shape(series.levels[0])
    return source_object(
        format=kind,
        vendor=vendor,
        width=width,
        height=height,
        levels=len(series.levels),
        mppX=mpp_x,
        mppY=mpp_y,
        objectivePower=power,
        channels=[{"name": name, "bitsPerSample": bits} for name in names],
        compression=COMPRESSIONS.get(int(page.compression), _compression_name(page.compression)),
    )


def _resolution_mpp(page: Any) -> tuple[float | None, float | None]:
    """Microns per pixel from XResolution/YResolution in pixels per centimetre (None when
    absent, or too coarse to be a scan's)."""
    if page.resolutionunit != tifffile.RESUNIT.CENTIMETER:
        return None, None
    mpp = [1e4 / r if r else None for r in page.get_resolution()]
    if not all(v is not None and v <= MAX_RESOLUTION_MPP for v in mpp):
        return None, None
    return mpp[0], mpp[1]


def _ome(tif: tifffile.TiffFile) -> dict[str, Any]:
    """PhysicalSizeX/Y (µm), channel names and colours of the first OME image."""
    found: dict[str, Any] = {"mpp": (None, None), "names": [], "colours": []}
    try:
        root = SafeET.fromstring(tif.ome_metadata or "")
    except (SafeET.ParseError, ValueError):
        return found
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    if pixels is None:
        return found

    def size(axis: str) -> float | None:
        value = pixels.get(f"PhysicalSize{axis}")
        scale = UNITS_IN_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        return float(value) * scale if value and scale else None

    channels = [el for el in pixels if el.tag.endswith("}Channel")]
    found["mpp"] = (size("X"), size("Y"))
    found["names"] = [el.get("Name") for el in channels]
    found["colours"] = [_ome_colour(el.get("Color")) for el in channels]
    return found


def _ome_colour(value: str | None) -> tuple[int, int, int] | None:
    if value is None or not re.fullmatch(r"-?\d+", value):
        return None
    rgba = int(value) & 0xFFFFFFFF
    return (rgba >> 24) & 255, (rgba >> 16) & 255, (rgba >> 8) & 255


def _plane_shape(level: Any) -> tuple[int, int]:
    axes, shape = level.axes, level.shape
    return shape[axes.index("Y")], shape[axes.index("X")]


def _channel_count(series: Any) -> int:
    axes, shape = series.axes, series.shape
    return int(shape[axes.index("C")]) if "C" in axes else 1


def _tiff_associated(tif: tifffile.TiffFile, kind: str) -> dict[str, np.ndarray[Any, Any]]:
    """The label, macro and thumbnail: where the vendor keeps them
    (slide_vendors.vendor_associated), else tifffile's series of those names (SVS, NDPI)."""
    candidates: dict[str, Any] = slide_vendors.vendor_associated(tif, kind) or {
        (series.name or "").lower(): series for series in reversed(tif.series[1:])
    }
    found = {}
    for name, series in candidates.items():
        if name not in ASSOCIATED:
            continue
        if isinstance(series, bytes):  # embedded JPEG (Philips XML)
            found[name] = slide_vendors.decode_embedded(name, series)
            continue
        height, width = _plane_shape(series)
        if height * width > ASSOCIATED_MAX_PIXELS:
            raise SlipwayError(
                Code.IMAGE_TOO_LARGE,
                f"the {name} image has {height * width} pixels, over {ASSOCIATED_MAX_PIXELS}",
            )
        try:
            pixels = series.asarray()
        except Exception as exc:
            raise _unreadable(f"the {name} image is damaged", exc) from exc
        if pixels.ndim > 3:  # leading axes of one plane (Leica: C, Z)
            pixels = pixels.reshape(-1, height, width, pixels.shape[-1])[0]
        found[name] = pixels
    return found


def _decode_tiff(
    slide: Slide,
    tif: tifffile.TiffFile,
    series: Any,
    reader: Any,
    box: tuple[int, ...] | None = None,
) -> pyvips.Image:
    """Level 0 (or its rectangle `box`: x, y, width, height) decoded strip by strip (one
    row of tiles at a time) by tifffile, rendered to 8 bits, and handed to libvips as an
    uncompressed PNG stream: memory stays bounded by a strip, whatever the slide's size.
    A decode error is kept on `slide.error`. The rendering of channels depends on a
    low-resolution sample only, so every rectangle of a slide is rendered alike."""
    page = series.levels[0].keyframe
    rgb = page.photometric in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
    level0 = LevelReader(tif, series.levels[0])
    rgb = rgb and level0.channels in (3, 4)
    window = None
    if not rgb:
        low = next(
            (lv for lv in reversed(series.levels) if np.prod(_plane_shape(lv)) >= WINDOW_PIXELS),
            series.levels[0],
        )
        sample = _guarded(reader, lambda: LevelReader(tif, low).sample())
        window = Rendering.from_sample(sample, _ome(tif)["colours"] if tif.is_ome else [])
    render = Rendering(rgb=True, bits=page.bitspersample) if rgb else window
    assert render is not None
    if box is not None:
        x, y, width, height = box
        decoded = level0.window(x, y, width, height)
    else:
        decoded, width, height = level0.strips(), level0.width, level0.height
    strips = _guarded_strips(reader, (render(strip) for strip in decoded))
    return png_stream(strips, width, height, lambda exc: setattr(slide, "error", exc))


def _guarded(reader: Any, work: Callable[[], Any]) -> Any:
    """`work`, its failures as what they are: storage errors raised as such, any decode
    error IMAGE_UNREADABLE."""
    try:
        return work()
    except SlipwayError:
        raise
    except Exception as exc:
        if reader.error is not None:
            raise reader.error from exc
        raise _unreadable("the slide's pixels are damaged", exc) from exc


def _guarded_strips(
    reader: Any, strips: Iterator[np.ndarray[Any, Any]]
) -> Iterator[np.ndarray[Any, Any]]:
    while (strip := _guarded(reader, lambda: next(strips, None))) is not None:
        yield strip


@cache
def _decoders() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="decode")


class LevelReader:
    """One pyramid level of a TIFF series, decoded a row of tiles (or strips) at a time
    into H × W × C arrays: C are the samples of a page, or the channels stored as pages
    (OME-TIFF), the first plane of any other axis (Z, T)."""

    def __init__(self, tif: tifffile.TiffFile, level: Any) -> None:
        self.fh = tif.filehandle
        pairs = zip(level.axes, level.shape, strict=True)
        lead = [(axis, size) for axis, size in pairs if axis not in "YXS"]
        channels = dict(lead).get("C", 1)
        shape = [size for _, size in lead] or [1]
        indices = [
            int(np.ravel_multi_index([c if axis == "C" else 0 for axis, _ in lead] or [0], shape))
            for c in range(channels)
        ]
        self.pages = [level.pages[i] for i in indices]
        key = self.pages[0].keyframe
        self.key = key
        self.width, self.height = int(key.imagewidth), int(key.imagelength)
        self.channels = len(self.pages) * int(key.samplesperpixel)
        self.rows = int(key.tilelength if key.is_tiled else min(key.rowsperstrip, self.height))
        self.cols = int(key.tilewidth if key.is_tiled else self.width)
        self.per_pass = -(-64 // self.rows)  # chunk rows per strip: at least 64 image rows
        self.chunked = key.chunked
        self.separate = key.planarconfig == tifffile.PLANARCONFIG.SEPARATE and (
            key.samplesperpixel > 1
        )
        self.restart_tiled = ndpi.is_restart_tiled(key)
        self.decodeargs: dict[str, Any] = {"_fullsize": False}
        if int(key.compression) in (6, 7):
            self.decodeargs["jpegheader"] = key.jpegheader
        with self.fh.lock:
            key.init_decode()

    @property
    def chunk_rows(self) -> int:
        return -(-self.height // self.rows)

    def strips(self) -> Iterator[np.ndarray[Any, Any]]:
        for first in range(0, self.chunk_rows, self.per_pass):
            yield self.strip(first, min(self.per_pass, self.chunk_rows - first))

    def window(self, x: int, y: int, width: int, height: int) -> Iterator[np.ndarray[Any, Any]]:
        """The rectangle's rows, a strip at a time, from only the tiles it touches."""
        c0, c1 = x // self.cols, -(-(x + width) // self.cols)
        r0, r1 = y // self.rows, -(-(y + height) // self.rows)
        left = x - c0 * self.cols
        for first in range(r0, r1, self.per_pass):
            count = min(self.per_pass, r1 - first)
            strip = self.strip(first, count, (c0, c1))
            top = first * self.rows
            lo, hi = max(y, top) - top, min(y + height, top + strip.shape[0]) - top
            yield strip[lo:hi, left : left + width]

    def sample(self, most: int = 16) -> np.ndarray[Any, Any]:
        """Up to `most` strips spread over the level (all of a small one)."""
        step = max(1, self.chunk_rows // most)
        return np.concatenate([self.strip(r, 1) for r in range(0, self.chunk_rows, step)])

    def strip(
        self, first: int, count: int, columns: tuple[int, int] | None = None
    ) -> np.ndarray[Any, Any]:
        """Chunk rows first … first + count, of chunk columns `columns` (all by default)."""
        top = first * self.rows
        rows = min(count * self.rows, self.height - top)
        parts = [self._page_strip(page, first, count, top, rows, columns) for page in self.pages]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def _page_strip(
        self,
        page: Any,
        first: int,
        count: int,
        top: int,
        rows: int,
        columns: tuple[int, int] | None,
    ) -> np.ndarray[Any, Any]:
        key = self.key
        separate = int(key.samplesperpixel) if self.separate else 1
        contig = 1 if self.separate else int(key.samplesperpixel)
        across = self.chunked[-2] if contig > 1 else self.chunked[-1]
        c0, c1 = columns or (0, across)
        left = c0 * self.cols
        width = min(c1 * self.cols, self.width) - left
        if self.restart_tiled:
            pixels = ndpi.decode(
                page,
                key,
                self._reader(page),
                across,
                range(first, first + count),
                range(c0, c1),
                _decoders().map,
            )
            return pixels[:rows, :width]
        out = np.full((separate, rows, width, contig), key.nodata, key.dtype)
        indices = []
        for s in range(separate):
            for r in range(first, first + count):
                for c in range(c0, c1):
                    position = [s] if self.separate else []
                    position += [0] if key.imagedepth > 1 else []
                    position += [r, c] + ([0] if contig > 1 else [])
                    indices.append(int(np.ravel_multi_index(position, self.chunked)))
        args = dict(self.decodeargs)
        if "jpegheader" in args:
            args["jpegtables"] = getattr(page, "jpegtables", None) or key.jpegtables
        segments = self.fh.read_segments(
            [page.dataoffsets[i] for i in indices],
            [page.databytecounts[i] for i in indices],
            indices=indices,
            lock=self.fh.lock,
        )
        # the codecs release the GIL: a row of tiles decodes on every core
        decoded = _decoders().map(lambda pair: key.decode(*pair, **args), segments)
        for segment, (s, _, y, x, _), _ in decoded:
            if segment is None:
                continue  # an empty (sparse) tile: nodata, as the format says
            y, x = y - top, x - left
            h, w = min(segment.shape[1], rows - y), min(segment.shape[2], width - x)
            out[s, y : y + h, x : x + w] = segment[0, :h, :w]
        return np.moveaxis(out[..., 0], 0, -1) if self.separate else out[0]

    def _reader(self, page: Any) -> Callable[[list[int]], Iterator[tuple[bytes | None, int]]]:
        def read(indices: list[int]) -> Iterator[tuple[bytes | None, int]]:
            return cast(
                Iterator[tuple[bytes | None, int]],
                self.fh.read_segments(
                    [page.dataoffsets[i] for i in indices],
                    [page.databytecounts[i] for i in indices],
                    indices=indices,
                    lock=self.fh.lock,
                ),
            )

        return read


def encode_associated(name: str, pixels: np.ndarray[Any, Any]) -> tuple[bytes, str, str]:
    """(bytes, extension, media type): the label as PNG (barcodes, text), others JPEG."""
    image = pyvips.Image.new_from_array(np.ascontiguousarray(pixels))
    if image.bands in (2, 4):
        image = image.flatten(background=[255] * (image.bands - 1))
    if name == "label":
        return image.pngsave_buffer(), "png", "image/png"
    return image.jpegsave_buffer(Q=90), "jpg", "image/jpeg"
