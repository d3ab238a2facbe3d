"""Tile a slide into a Deep Zoom pyramid, straight from object storage to object storage.

The source is read through ranged GETs (no local copy, except DICOM's, bounded; which
reader decodes which format: slipway.slide_readers), and libvips' dzsave writes the
pyramid into a stream, which is unpacked entry by entry and PUT in parallel as it is
produced; the `.dzi` descriptor goes last, once every tile and associated image is stored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pyvips

from slipway import slide_dicom, slide_readers, slide_vendors, storage, tilestore, uploads
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.jobs import Job
from slipway.worker import Lease

log = logging.getLogger(__name__)
FORMATS = ("jpeg", "webp", "png")

# The inputs Slipway tiles, judged by their first bytes (never the name), each with the
# libvips loader that must then open it (TIFF-family slides are first read by tifffile, and
# DICOM by OpenSlide: slide_readers). Anything else (SVG, PDF, GIF, HEIF, …) is
# IMAGE_UNSUPPORTED: an SVG declaring 100k × 100k pixels in 122 bytes is never rendered.
LOADERS = {
    "jpeg": "jpegload_source",
    "png": "pngload_source",
    "tiff": "tiffload_source",  # classic and BigTIFF, so the TIFF-family slides too
    "webp": "webpload_source",
}
SNIFF_BYTES = 132  # DICOM's "DICM" is at offset 128
# Up to this many pixels an image is tiled whatever its bytes per pixel (a blank
# 10k × 10k PNG is a few KB, and cheap to tile); above it the pixels-per-byte limit holds.
PIXELS_FREE_OF_RATIO = 10_000 * 10_000


@dataclass(frozen=True)
class TileOptions:
    tile_size: int = 256  # 256/0: DZI tiles that are IIIF tiles too
    overlap: int = 0
    format: str = "jpeg"
    quality: int = 85
    skip_blanks: int = -1  # dzsave's threshold; -1 keeps every tile
    layout: str = "archive"  # or "files": see slipway.tilestore

    @classmethod
    def from_env(cls) -> TileOptions:
        env = os.environ
        options = cls(
            tile_size=int(env.get("SLIPWAY_TILE_SIZE", 256)),
            overlap=int(env.get("SLIPWAY_TILE_OVERLAP", 0)),
            format=env.get("SLIPWAY_TILE_FORMAT", "jpeg"),
            quality=int(env.get("SLIPWAY_TILE_QUALITY", 85)),
            skip_blanks=int(env.get("SLIPWAY_TILE_SKIP_BLANKS", -1)),
            layout=env.get("SLIPWAY_TILE_LAYOUT", "archive"),
        )
        if (
            options.format not in FORMATS
            or options.layout not in tilestore.LAYOUTS
            or not 1 <= options.tile_size <= 8192
        ):
            raise ValueError(f"bad tile options {options}")
        return options

    @property
    def suffix(self) -> str:
        return f".{self.format}" if self.format == "png" else f".{self.format}[Q={self.quality}]"


# reading: a seekable view of an S3 object, in cached blocks ------------------------------


def pyvips_source(reader: storage.RangedReader) -> pyvips.Source:
    """A libvips source reading through `reader`. A failed read ends the input (libvips
    then fails the load) and is kept on the reader, to be raised as what it was."""
    src = pyvips.SourceCustom()

    def on_read(length: int) -> bytes:
        try:
            return reader.read(length)
        except Exception as exc:
            reader.error = exc
            return b""

    src.on_read(on_read)
    src.on_seek(reader.seek)
    return src


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce, if it is one of LOADERS or DICOM."""
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF, BigTIFF
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def open_slide(source: storage.RangedReader, size: int) -> slide_readers.Slide:
    """The source's reader, its header read and no pixel decoded, if Slipway tiles it."""
    head = source.read(SNIFF_BYTES)
    source.seek(0)
    if not head:
        raise SlipwayError(Code.IMAGE_UNREADABLE, "the file is empty")
    kind = sniff(head)
    if kind is None:
        part_of = slide_vendors.multi_file_format(head, slide_readers.FileView(source))
        raise SlipwayError(
            Code.IMAGE_UNSUPPORTED,
            part_of
            or f"not a JPEG, PNG, TIFF, DICOM or WebP image (it starts with 0x{head[:8].hex()})",
        )
    if kind == "dicom":
        return slide_dicom.read_dicom(source, size)
    if kind == "tiff":
        slide = slide_readers.read_tiff(source)
        source.seek(0)
        if slide.decode is None:
            slide.decode = lambda: open_image(source, kind)
            slide.window = lambda x, y, w, h: open_image(source, kind, "random").crop(x, y, w, h)
        return slide
    image = open_image(source, kind)
    return slide_readers.Slide(
        slide_readers.source_object(
            format=kind,
            width=image.width,
            height=image.height,
            levels=1,
            channels=[
                {"name": None, "bitsPerSample": 8 if image.format == "uchar" else 16}
                for _ in range(image.bands)
            ],
            compression=kind,
        ),
        decode=lambda: image,
    )


def open_image(source: storage.RangedReader, kind: str, access: str = "sequential") -> pyvips.Image:
    """The source's image through libvips, its header read and no pixel decoded."""
    try:
        image = pyvips.Image.new_from_source(
            pyvips_source(source), "", access=access, fail_on="error"
        )
    except pyvips.Error as exc:
        if source.error is not None:
            raise source.error from exc
        raise SlipwayError(
            Code.IMAGE_UNREADABLE, f"not a readable {kind} image: {_first_line(exc)}"
        ) from exc
    loader = image.get("vips-loader")
    if loader != LOADERS[kind]:
        raise SlipwayError(Code.IMAGE_UNSUPPORTED, f"{kind} bytes, but libvips chose {loader}")
    return image


def check_pixels(width: int, height: int, size: int) -> None:
    """IMAGE_TOO_LARGE for a declared size over the pixel budget, or for far more pixels
    than `size` bytes plausibly encode (a decompression bomb), before any is decoded."""
    s = settings()
    pixels = width * height
    if pixels > s.max_image_pixels:
        raise SlipwayError(
            Code.IMAGE_TOO_LARGE,
            f"{width}×{height} pixels is over the limit of {s.max_image_pixels}",
        )
    if pixels > max(PIXELS_FREE_OF_RATIO, size * s.max_pixels_per_byte):
        raise SlipwayError(
            Code.IMAGE_TOO_LARGE,
            f"{width}×{height} pixels from {size} bytes ({pixels // max(size, 1)} per byte) "
            f"is over the limit of {s.max_pixels_per_byte} pixels per byte",
        )


# writing: dzsave → zip stream → parallel PUTs -------------------------------------------


def levels_for(width: int, height: int) -> int:
    """Deep Zoom levels: 1×1 up to full size, halving each time (ceil(log2(side)) + 1)."""
    return (max(width, height) - 1).bit_length() + 1


def tile(
    bucket: str,
    key: str,
    size: int,
    out_bucket: str,
    prefix: str,
    lease: Lease,
    options: TileOptions,
) -> dict[str, Any]:
    """Build the pyramid of one source object; returns what the slide record holds."""
    source = storage.RangedReader(bucket, key, size)
    writer = tilestore.writer(options.layout, out_bucket, prefix, lease)
    stored: list[str] = []
    slide: slide_readers.Slide | None = None
    try:
        slide = open_slide(source, size)
        width, height = slide.source["width"], slide.source["height"]
        check_pixels(width, height, size)
        check_single_pass(width, height)
        assert slide.decode is not None
        image = _displayable(slide.decode())
        width, height = image.width, image.height
        dzsave(image, writer, source, slide, lease, options)
        associated = store_associated(out_bucket, prefix, slide.associated, stored)
        writer.finish()
    except BaseException:
        writer.abandon()
        for stored_key in stored:
            storage.client().delete_object(Bucket=out_bucket, Key=stored_key)
        raise
    finally:
        for close in reversed(slide.close if slide else []):
            close()
        source.close()
    return {
        "width": width,
        "height": height,
        "tileSize": options.tile_size,
        "overlap": options.overlap,
        "format": options.format,
        "levels": levels_for(width, height),
        "tileCount": writer.tiles,
        "tilesPrefix": prefix,
        "layout": options.layout,
        "source": slide.source,
        "associated": associated,
    }


def check_single_pass(width: int, height: int) -> None:
    """IMAGE_TOO_LARGE for an image over what one function tiles in one pass (one that is
    not fanned out: a sequential format, docs/tiling.md#fan-out)."""
    limit = settings().max_single_pass_pixels
    if width * height > limit:
        raise SlipwayError(
            Code.IMAGE_TOO_LARGE,
            f"{width}×{height} pixels is over the limit of {limit} for an image tiled in "
            f"one pass (only tiled TIFF-family slides are split into regions)",
        )


def dzsave(
    image: pyvips.Image,
    writer: tilestore.Writer,
    source: storage.RangedReader,
    slide: slide_readers.Slide,
    lease: Lease,
    options: TileOptions,
) -> None:
    """dzsave `image` into `writer`'s stream; a failure raised as what caused it."""
    lease.check()
    try:
        image.dzsave_target(
            writer.target(),
            basename=tilestore.DZI_NAME,
            container="zip",
            compression=0,
            tile_size=options.tile_size,
            overlap=options.overlap,
            suffix=options.suffix,
            skip_blanks=options.skip_blanks,
        )
    except pyvips.Error as exc:
        lease.check()
        if writer.error is not None:
            raise writer.error from exc
        if source.error is not None:
            raise source.error from exc
        if slide.error is not None:  # a decode error in the reader feeding libvips
            raise slide.error from exc
        raise SlipwayError(
            Code.IMAGE_UNREADABLE, f"the image is damaged: {_first_line(exc)}"
        ) from exc
    lease.check()


def associated_key(prefix: str, name: str, extension: str) -> str:
    return f"{prefix}associated/{name}.{extension}"


def store_associated(
    bucket: str, prefix: str, images: dict[str, Any], stored: list[str]
) -> dict[str, dict[str, str]]:
    """Each associated image (label, macro, thumbnail) as one object; `stored` collects
    the keys (removed again if the attempt fails)."""
    listed = {}
    for name, pixels in images.items():
        data, extension, media_type = slide_readers.encode_associated(name, pixels)
        key = associated_key(prefix, name, extension)
        storage.put_bytes(bucket, key, data, media_type)
        stored.append(key)
        listed[name] = {"key": key, "mediaType": media_type}
    return listed


def _displayable(image: pyvips.Image) -> pyvips.Image:
    """8-bit grey or sRGB without alpha, which every tile format can store."""
    if image.interpretation == "cmyk":
        image = image.colourspace("srgb")
    if image.hasalpha() or image.bands in (2, 4):
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.format != "uchar":
        image = image.colourspace("b-w" if image.bands == 1 else "srgb")
    if image.bands > 3:
        image = image.extract_band(0, n=3)
    return image


def _first_line(exc: pyvips.Error) -> str:
    text = str(getattr(exc, "detail", "") or exc).strip()
    return text.splitlines()[0][:300] if text else "unknown error"


def run_job(job: Job, lease: Lease) -> list[NewEvent]:
    """The tile job: the upload's content-addressed object → DZI in the tiles bucket."""
    upload = uploads.ready_for(job.upload_id, "tile")
    s = settings()
    options = TileOptions.from_env()
    from slipway import fanout, regions  # the fan-out of slides over the threshold

    layout = regions.plan_for(s.data_bucket, upload.blob_key, upload.size, options)
    if layout is not None:
        log.info(
            "slide fanned out",
            extra={"upload_id": str(upload.id), "regions": len(layout.regions)},
        )
        return fanout.fan_out(job, layout, lease.worker)
    result = tile(
        s.data_bucket,
        upload.blob_key,
        upload.size,
        s.tiles_bucket,
        tilestore.begin_attempt(
            s.tiles_bucket, storage.slide_prefix(upload.id), job.id, job.attempt_count
        ),
        lease,
        options,
    )
    log.info(
        "slide tiled",
        extra={
            "upload_id": str(upload.id),
            "tiles": result["tileCount"],
            "source_format": result["source"]["format"],
        },
    )
    return [NewEvent("v1.slide.tiled", "slide", upload.id, {"jobId": str(job.id), **result})]
