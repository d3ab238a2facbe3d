"""DICOM WSI through OpenSlide, which needs a file path: a local copy on ephemeral
storage up to SLIPWAY_MAX_LOCAL_COPY_BYTES (else IMAGE_TOO_LARGE), level 0 decoded into
memory up to SLIPWAY_MAX_DECODED_BYTES. docs/tiling.md says why this reader."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pyvips

from slipway import storage
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.slide_readers import ASSOCIATED, Slide, _unreadable, check_decoded, source_object

# DICOM transfer syntaxes, as `source.compression` names them
TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.1": "none",
    "1.2.840.10008.1.2": "none",
    "1.2.840.10008.1.2.4.50": "jpeg",
    "1.2.840.10008.1.2.4.51": "jpeg",
    "1.2.840.10008.1.2.4.57": "jpeg-lossless",
    "1.2.840.10008.1.2.4.70": "jpeg-lossless",
    "1.2.840.10008.1.2.4.80": "jpeg-ls",
    "1.2.840.10008.1.2.4.81": "jpeg-ls",
    "1.2.840.10008.1.2.4.90": "jpeg2000",
    "1.2.840.10008.1.2.4.91": "jpeg2000",
    "1.2.840.10008.1.2.4.201": "htj2k",
    "1.2.840.10008.1.2.4.202": "htj2k",
    "1.2.840.10008.1.2.4.203": "htj2k",
    "1.2.840.10008.1.2.5": "rle",
}


def read_dicom(reader: storage.RangedReader, size: int) -> Slide:
    import openslide

    limit = settings().max_local_copy_bytes
    if size > limit:
        raise SlipwayError(
            Code.IMAGE_TOO_LARGE,
            f"DICOM is read from a local copy, and {size} bytes is over the limit of {limit} "
            f"(SLIPWAY_MAX_LOCAL_COPY_BYTES)",
        )
    folder = tempfile.mkdtemp(prefix="slipway-slide-")
    slide = Slide(source_object(format="dicom-wsi"), reader="openslide")
    slide.close.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    try:
        path = os.path.join(folder, "slide.dcm")
        reader.seek(0)
        with open(path, "wb") as out:
            while chunk := reader.read(storage.MiB * 8):
                out.write(chunk)
        try:
            opened = openslide.OpenSlide(path)
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise SlipwayError(
                Code.IMAGE_UNSUPPORTED, f"not a DICOM WSI OpenSlide reads: {exc}"
            ) from exc
        except openslide.OpenSlideError as exc:
            raise _unreadable("not a readable DICOM WSI", exc) from exc
        slide.close.append(opened.close)
        width, height = opened.dimensions
        props = opened.properties
        slide.source = source_object(
            format="dicom-wsi",
            vendor=props.get("openslide.vendor"),
            width=width,
            height=height,
            levels=opened.level_count,
            mppX=_float(props.get("openslide.mpp-x")),
            mppY=_float(props.get("openslide.mpp-y")),
            objectivePower=_float(props.get("openslide.objective-power")),
            channels=[{"name": n, "bitsPerSample": 8} for n in ("R", "G", "B")],
            compression=TRANSFER_SYNTAXES.get(props.get("dicom.TransferSyntaxUID", "")),
        )
        try:
            for name in ASSOCIATED:
                if name in opened.associated_images:
                    slide.associated[name] = np.asarray(
                        opened.associated_images[name].convert("RGB")
                    )
        except openslide.OpenSlideError as exc:
            raise _unreadable(f"the {name} image is damaged", exc) from exc

        def decode() -> pyvips.Image:
            check_decoded((height, width, 4), np.uint8)
            try:
                rgba = np.asarray(opened.read_region((0, 0), 0, (width, height)))
            except openslide.OpenSlideError as exc:
                raise _unreadable("the slide's pixels are damaged", exc) from exc
            image = pyvips.Image.new_from_array(np.ascontiguousarray(rgba))
            return image.copy(interpretation="srgb")

        slide.decode = decode
        return slide
    except BaseException:
        for close in reversed(slide.close):
            close()
        raise


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
