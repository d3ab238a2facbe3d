"""A slide's pixels as libvips reads them when tifffile decodes: a display rendering of
any sample type and channel count in 8-bit grey or sRGB (`Rendering`), streamed strip by
strip into libvips as an uncompressed PNG (`png_stream`)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyvips

# fluorescence channels without an OME colour: one channel is grey, more get these
PALETTE = (
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (255, 255, 255),
)
WINDOW = (0.1, 99.9)  # percentiles per channel, from a low-resolution level
WINDOW_PIXELS = 512 * 512  # the smallest level at least this big sets the window


class Rendering:
    """8-bit pixels for display. RGB(A) is scaled from its bit depth; any other channels
    are windowed each on its own (WINDOW percentiles of a low-resolution sample) and
    coloured (OME colours, else PALETTE; one channel stays grey), then added up."""

    def __init__(
        self,
        *,
        rgb: bool,
        bits: int = 8,
        windows: list[tuple[float, float]] | None = None,
        colours: list[tuple[int, int, int]] | None = None,
    ) -> None:
        self.rgb, self.bits = rgb, bits
        self.windows, self.colours = windows or [], colours or []

    @classmethod
    def from_sample(
        cls, sample: np.ndarray[Any, Any], colours: list[tuple[int, int, int] | None]
    ) -> Rendering:
        count = sample.shape[-1]
        windows = []
        for c in range(count):
            lo, hi = (float(v) for v in np.percentile(sample[:, :, c], WINDOW))
            windows.append((lo, hi if hi > lo else lo + 1))
        chosen = [
            (colours[c] if c < len(colours) else None) or PALETTE[c % len(PALETTE)]
            for c in range(count)
        ]
        return cls(rgb=False, windows=windows, colours=chosen)

    def __call__(self, strip: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.rgb:
            if strip.dtype == np.uint8:
                return strip
            top = float(2 ** min(self.bits, 8 * strip.dtype.itemsize) - 1)
            return np.clip(strip * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        shown = [
            np.clip((strip[:, :, c].astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
            for c, (lo, hi) in enumerate(self.windows)
        ]
        if len(shown) == 1:
            grey: np.ndarray[Any, Any] = (shown[0] + 0.5).astype(np.uint8)
            return grey[:, :, None]
        total = np.zeros((*strip.shape[:2], 3), np.float32)
        for plane, colour in zip(shown, self.colours, strict=True):
            total += plane[:, :, None] * (np.array(colour, np.float32) / 255.0)
        return np.clip(total + 0.5, 0, 255).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # bands → grey, grey+alpha, RGB, RGBA


def png_stream(
    strips: Iterator[np.ndarray[Any, Any]],
    width: int,
    height: int,
    keep_error: Callable[[BaseException], None],
) -> pyvips.Image:
    """libvips' image of `strips` (8-bit H × W × bands), fed as a stored (uncompressed)
    PNG while libvips reads it: PNG is the libvips loader that streams from a pipe. An
    error raised by `strips` once libvips reads is handed to `keep_error`, and libvips,
    seeing the input end early, fails the load."""
    first = next(strips)
    bands = first.shape[-1]
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[bands], 0, 0, 0)
    deflate = zlib.compressobj(0)

    def chunks() -> Iterator[bytes]:
        yield b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
        strip: np.ndarray[Any, Any] | None = first
        while strip is not None:
            rows = np.zeros((strip.shape[0], 1 + width * bands), np.uint8)  # filter 0
            rows[:, 1:] = strip.reshape(strip.shape[0], -1)
            yield _png_chunk(b"IDAT", deflate.compress(rows.tobytes()))
            strip = next(strips, None)
        yield _png_chunk(b"IDAT", deflate.flush()) + _png_chunk(b"IEND", b"")

    produced = chunks()
    pending = bytearray()

    def on_read(length: int) -> bytes:
        try:
            while len(pending) < length:
                chunk = next(produced, None)
                if chunk is None:
                    break
                pending.extend(chunk)
        except BaseException as exc:
            keep_error(exc)  # libvips sees the end of the input, and fails the load
            return b""
        data = bytes(pending[:length])
        del pending[:length]
        return data

    source = pyvips.SourceCustom()
    source.on_read(on_read)
    image = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="error")
    if image.get("vips-loader") != "pngload_source":
        raise RuntimeError(f"libvips read the strips with {image.get('vips-loader')}")
    return image
