"""What each scanner vendor's TIFF variant says about itself, read from its own tags
(tifffile has found the structure), and the multi-file formats no single upload carries.

- Hamamatsu NDPI: a classic TIFF with 64-bit offsets (detected from the bytes, as
  OpenSlide does), SourceLens (65421) the objective, X/YResolution the pixel size, the
  macro photograph a directory of SourceLens -1.
- Philips TIFF: the DPUfsImport XML in ImageDescription: DICOM_PIXEL_SPACING (mm, row then
  column), the objective in DICOM_DERIVATION_DESCRIPTION (`levels=20,...`), the label and
  macro as base64 JPEG (PIM_DP_IMAGE_DATA) or as directories described Label / Macro.
- Leica SCN: the scn XML: the main (brightfield) image, not the macro (whose view is the
  whole collection); mpp = view size (nm) / pixels; the objective in scanSettings.
- Ventana BIF: the iScan XMP (ScanRes = mpp, Magnification); `Label_Image` is the macro
  photograph (as OpenSlide names it), `Thumbnail` the thumbnail; level 0's EncodeInfo XMP
  says whether tiles overlap (then they need stitching, which Slipway does not do).
- MIRAX (MRXS): a folder (Slidedat.ini, Index.dat, Data*.dat beside a .mrxs preview):
  recognised in what a lab might upload of it, and refused with IMAGE_UNSUPPORTED.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zipfile
from typing import IO, Any, cast

import imagecodecs
import numpy as np
import tifffile
from defusedxml import ElementTree as SafeET

from slipway.errors import Code, SlipwayError

NDPI_FORMAT_FLAG = 65420
LEICA_NAMESPACES = (
    "http://www.leica-microsystems.com/scn/2010/10/01",
    "http://www.leica-microsystems.com/scn/2010/03/10",
)
MRXS_MESSAGE = (
    "a MIRAX (.mrxs) slide is a folder of files (Slidedat.ini, Index.dat, Data*.dat) that "
    "one upload cannot carry: convert it to a single-file format (e.g. OME-TIFF or DICOM "
    "WSI) and upload that"
)


def _xml(text: str | bytes | None) -> Any:
    if not text:
        return None
    try:
        return SafeET.fromstring(text)
    except (SafeET.ParseError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


# the bytes ----------------------------------------------------------------------------


def ndpi_layout(read_at: Any, size: int) -> bool:
    """A classic TIFF in NDPI's 64-bit-offset layout: its first directory, read at an
    8-byte offset, holds the NDPI tag (OpenSlide's rule). tifffile must be told
    (`is_ndpi=True`): it would otherwise guess from a `.ndpi` file name."""
    head = read_at(0, 16)
    if len(head) < 12 or head[:4] != b"II*\x00":
        return False
    offset = struct.unpack_from("<Q", head, 4)[0]
    if not 8 <= offset <= size - 2:
        return False
    count = struct.unpack("<H", read_at(offset, 2))[0]
    entries = read_at(offset + 2, 12 * count)
    tags = {struct.unpack_from("<H", entries, 12 * i)[0] for i in range(len(entries) // 12)}
    return NDPI_FORMAT_FLAG in tags


def multi_file_format(head: bytes, file: Any) -> str | None:
    """Why this upload is a part of a multi-file slide (MRXS), else None: its
    Slidedat.ini, or a ZIP of the slide's folder."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"[GENERAL]") and b"SLIDE_" in text:
        return MRXS_MESSAGE
    if head.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(file).namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return None
        if any(n.lower().endswith(("slidedat.ini", ".mrxs")) for n in names):
            return MRXS_MESSAGE + " (this ZIP holds one: upload a single-file slide instead)"
    return None


# the main image ------------------------------------------------------------------------


def main_series(tif: tifffile.TiffFile) -> Any:
    """The series that is the slide: for Leica SCN the first brightfield image that is
    not the macro (tifffile lists the images in the XML's order, the macro often first)."""
    if tif.is_scn:
        _refuse_scn_z_stacks(tif)
        for index, image in enumerate(_scn_images(tif)):
            if not image["macro"] and index < len(tif.series):
                return tif.series[index]
    return tif.series[0]


def _refuse_scn_z_stacks(tif: tifffile.TiffFile) -> None:
    root = _xml(tif.scn_metadata)
    for image in [] if root is None else root.iter():
        planes = image.get("sizeZ") if image.tag.endswith("image") else None
        if planes and int(_number(planes) or 1) > 1:
            raise SlipwayError(
                Code.IMAGE_UNSUPPORTED,
                f"a Leica SCN z-stack ({planes} focal planes) is not supported: "
                "export a single focal plane",
            )


def _scn_images(tif: tifffile.TiffFile) -> list[dict[str, Any]]:
    """The images of the SCN collection that have pixels, as tifffile lists them."""
    root = _xml(tif.scn_metadata)
    if root is None:
        return []
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if ns not in LEICA_NAMESPACES:
        return []
    q = f"{{{ns}}}"
    collection = root.find(f"{q}collection")
    if collection is None:
        return []
    images = []
    for image in collection.findall(f"{q}image"):
        dimensions = image.findall(f"{q}pixels/{q}dimension")
        view = image.find(f"{q}view")
        if not dimensions or view is None:
            continue
        full = max(dimensions, key=lambda d: int(d.get("sizeX", 0)))
        size = (_number(view.get("sizeX")), _number(view.get("sizeY")))
        images.append(
            {
                "macro": view.get("offsetX") == "0"
                and view.get("offsetY") == "0"
                and view.get("sizeX") == collection.get("sizeX")
                and view.get("sizeY") == collection.get("sizeY"),
                "mpp": tuple(
                    nm / int(full.get(axis, 0)) / 1000 if nm and int(full.get(axis, 0)) else None
                    for nm, axis in zip(size, ("sizeX", "sizeY"), strict=True)
                ),
                "objective": image.findtext(f"{q}scanSettings/{q}objectiveSettings/{q}objective"),
            }
        )
    return images


# `source` ------------------------------------------------------------------------------


def vendor_source(tif: tifffile.TiffFile, kind: str, series: Any) -> dict[str, Any]:
    """mppX, mppY and objectivePower from the vendor's own metadata (only those found)."""
    page = series.levels[0].keyframe
    if kind in ("philips-tiff", "leica-scn", "ventana-bif") and 0 in page.databytecounts:
        # several scanned regions: the tiles between them are absent, which OpenSlide
        # shows as transparent; tiled as they are they would be black (or fail)
        raise SlipwayError(
            Code.IMAGE_UNSUPPORTED,
            f"this {kind} slide has level-0 tiles left out (several scanned regions): "
            "Slipway does not tile sparse slides",
        )
    if kind == "hamamatsu-ndpi":
        lens = (page.ndpi_tags or {}).get("Magnification")
        return {"objectivePower": _number(lens)}
    if kind == "philips-tiff":
        return _philips_source(tif)
    if kind == "leica-scn":
        image = next((i for i in _scn_images(tif) if not i["macro"]), None)
        if image is None:
            return {}
        mpp_x, mpp_y = image["mpp"]
        return {"mppX": mpp_x, "mppY": mpp_y, "objectivePower": _number(image["objective"])}
    if kind == "ventana-bif":
        _bif_check_joints(page)
        iscan = _bif_iscan(tif)
        if iscan is None:
            return {}
        mpp = _number(iscan.get("ScanRes"))
        return {"mppX": mpp, "mppY": mpp, "objectivePower": _number(iscan.get("Magnification"))}
    return {}


def _philips_wsi(tif: tifffile.TiffFile) -> tuple[Any, list[Any]]:
    """The DPUfsImport root and its DPScannedImage objects."""
    root = _xml(tif.philips_metadata)
    if root is None or root.get("ObjectType") != "DPUfsImport":
        return None, []
    scanned = root.find("Attribute[@Name='PIM_DP_SCANNED_IMAGES']/Array")
    return root, [] if scanned is None else scanned.findall("DataObject")


def _attribute(node: Any, name: str) -> str | None:
    found = node.find(f"Attribute[@Name='{name}']")
    return None if found is None else found.text


def _philips_source(tif: tifffile.TiffFile) -> dict[str, Any]:
    _, images = _philips_wsi(tif)
    wsi = next((i for i in images if _attribute(i, "PIM_DP_IMAGE_TYPE") == "WSI"), None)
    if wsi is None:
        return {}
    spacing = _attribute(wsi, "DICOM_PIXEL_SPACING")
    if spacing is None:  # else level 0's PixelDataRepresentation
        level = wsi.find(
            "Attribute[@Name='PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE']/Array/DataObject"
        )
        spacing = None if level is None else _attribute(level, "DICOM_PIXEL_SPACING")
    values = [_number(v.strip('"')) for v in (spacing or "").split()]
    found: dict[str, Any] = {}
    if len(values) == 2 and None not in values:
        row, column = cast(list[float], values)
        found = {"mppX": column * 1000, "mppY": row * 1000}
    for item in (_attribute(wsi, "DICOM_DERIVATION_DESCRIPTION") or "").split("-"):
        key, _, value = item.partition("=")
        if key == "sourceFilename":
            break
        if key == "levels":  # the first entry is the objective power, when plausible
            first = value.split(",")[0]
            if first.isdigit() and 0 < int(first) <= 200:
                found["objectivePower"] = float(first)
            break
    return found


def _bif_iscan(tif: tifffile.TiffFile) -> Any:
    root = _xml(tif.bif_metadata)
    if root is None:
        return None
    return root if root.tag == "iScan" else root.find("iScan")


def _bif_check_joints(page: Any) -> None:
    """Level 0's tile joints: overlapping tiles must be stitched (OpenSlide does, by the
    joints' offsets); Slipway reads the TIFF grid as it is, so it refuses them."""
    xmp = page.tags.valueof(700)
    root = _xml(xmp.rstrip(b"\x00") if isinstance(xmp, bytes) else xmp)
    if root is None:
        return
    for joint in root.iter("TileJointInfo"):
        overlap = (_number(joint.get("OverlapX")), _number(joint.get("OverlapY")))
        if any(overlap):
            raise SlipwayError(
                Code.IMAGE_UNSUPPORTED,
                "this Ventana BIF's tiles overlap (TileJointInfo OverlapX/OverlapY): "
                "Slipway does not stitch overlapping tiles",
            )


# associated images ---------------------------------------------------------------------


def vendor_associated(tif: tifffile.TiffFile, kind: str) -> dict[str, Any]:
    """name → the series or encoded bytes of the label, macro and thumbnail, where this
    vendor keeps them (None for formats named by tifffile's series names)."""
    if kind == "ventana-bif":
        found: dict[str, Any] = {}
        for series in tif.series[1:]:
            description = series.keyframe.description
            if description in ("Label_Image", "Label Image"):
                found.setdefault("macro", series)
            elif description == "Thumbnail":
                found.setdefault("thumbnail", series)
        return found
    if kind == "leica-scn":
        images = _scn_images(tif)
        macro = next((i for i, image in enumerate(images) if image["macro"]), None)
        return {} if macro is None or macro >= len(tif.series) else {"macro": tif.series[macro]}
    if kind == "philips-tiff":
        found = {s.name.lower(): s for s in tif.series[1:] if s.name in ("Label", "Macro")}
        _, images = _philips_wsi(tif)
        for image in images:
            name = {"LABELIMAGE": "label", "MACROIMAGE": "macro"}.get(
                _attribute(image, "PIM_DP_IMAGE_TYPE") or ""
            )
            data = _attribute(image, "PIM_DP_IMAGE_DATA")
            if name and data and name not in found:
                try:
                    found[name] = base64.b64decode(data, validate=False)
                except (binascii.Error, ValueError) as exc:
                    raise SlipwayError(
                        Code.IMAGE_UNREADABLE, f"the {name} image in the Philips XML: {exc}"
                    ) from exc
        return found
    return {}


def decode_embedded(name: str, data: bytes) -> np.ndarray[Any, Any]:
    """An associated image embedded as JPEG bytes (Philips), decoded."""
    try:
        return np.asarray(imagecodecs.jpeg8_decode(data))
    except Exception as exc:
        raise SlipwayError(
            Code.IMAGE_UNREADABLE, f"the {name} image is damaged: {str(exc)[:200]}"
        ) from exc


def read_at(file: IO[bytes]) -> Any:
    """`read_at(offset, length)` over a seekable file."""

    def read(offset: int, length: int) -> bytes:
        file.seek(offset)
        return file.read(length)

    return read
