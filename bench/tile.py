"""The tile function end to end — ranged reads of the source from S3, dzsave, tiles PUT to
the tiles bucket as they come — vs plain pyvips dzsave of the same file to local disk.
Ratio: Slipway's Mpx/s / dzsave's (goal ≥ 0.8); also peak RSS (goal ≤ 1 GiB) and PUTs.

Usage: python bench/tile.py [side_px]   (the stack must be up: make up)
Per slide format (SVS JPEG, SVS JPEG 2000, OME-TIFF), vs vips and openslide's
DeepZoomGenerator: bench/tile_formats.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])


import shutil
import tempfile
import uuid

from bench.common import DATA, itself, measure, result, use_stack

OPTIONS = {"tile_size": 254, "overlap": 1, "suffix": ".jpeg[Q=85]"}


def make_slide(side: int) -> Path:
    """Tissue-like islands on white, as a tiled pyramidal JPEG TIFF (a typical WSI)."""
    path = DATA / f"slide-{side}.tif"
    if path.exists():
        return path
    import pyvips

    DATA.mkdir(parents=True, exist_ok=True)
    small = side // 16
    mask = (pyvips.Image.perlin(small, small, cell_size=64, seed=3) > 0.1).ifthenelse(255, 0)
    mask = mask.cast("uchar").resize(16, kernel="linear")
    texture = pyvips.Image.perlin(side, side, cell_size=16, seed=5).linear(60, 150)
    tissue = texture.bandjoin([texture * 0.6, texture * 0.9]).cast("uchar")
    white = pyvips.Image.black(side, side, bands=3) + 255  # a flat-field corrected background
    slide = (mask > 128).ifthenelse(tissue, white).cast("uchar").copy(interpretation="srgb")
    slide.tiffsave(
        str(path),
        tile=True,
        pyramid=True,
        compression="jpeg",
        Q=85,
        tile_width=256,
        tile_height=256,
        bigtiff=True,
    )
    return path


def slipway_side(key: str, size: int, layout: str) -> None:
    env = use_stack()
    from slipway import tiling
    from slipway.worker import Lease

    prefix = f"bench/{uuid.uuid4()}/"
    out = tiling.tile(
        env["SLIPWAY_DATA_BUCKET"],
        key,
        size,
        env["SLIPWAY_TILES_BUCKET"],
        prefix,
        Lease.detached("tile", "bench"),
        tiling.TileOptions(),
    )
    print(out["tileCount"])


def vips_side(path: str, skip_blanks: int) -> None:
    import pyvips

    out = Path(tempfile.mkdtemp(dir=DATA))
    try:
        image = pyvips.Image.new_from_file(path, access="sequential")
        image.dzsave(str(out / "slide"), skip_blanks=skip_blanks, **OPTIONS)
        print(sum(1 for _ in (out / "slide_files").rglob("*.jpeg")))
    finally:
        shutil.rmtree(out)


def main() -> None:
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    env = use_stack()
    path = make_slide(side)
    size = path.stat().st_size
    key = f"bench/{path.name}"
    from slipway import storage

    if (
        storage.head(env["SLIPWAY_DATA_BUCKET"], key) or storage.ObjectInfo(0, "", "")
    ).size != size:
        storage.upload_file(str(path), env["SLIPWAY_DATA_BUCKET"], key, "image/tiff")
    reference = measure(itself("--vips", str(path), "-1"))
    ours = measure(itself("--slipway", key, str(size), "archive"))
    files = measure(itself("--slipway", key, str(size), "files"))
    blanks = measure(itself("--vips", str(path), "5"))
    mpx = side * side / 1e6
    tiles, kept = int(ours.output.split()[-1]), int(blanks.output.split()[-1])
    print(
        f"vips dzsave to local disk:        {mpx / reference.seconds:6.1f} Mpx/s, "
        f"peak RSS {reference.peak_rss_mib:4.0f} MiB"
    )
    print(
        f"slipway tile, archive (S3 → S3):  {mpx / ours.seconds:6.1f} Mpx/s, "
        f"peak RSS {ours.peak_rss_mib:4.0f} MiB, {tiles} tiles in one object"
    )
    print(
        f"slipway tile, files (S3 → S3):    {mpx / files.seconds:6.1f} Mpx/s, "
        f"peak RSS {files.peak_rss_mib:4.0f} MiB, {tiles} PUTs "
        f"({kept} with skip_blanks=5: {100 * (1 - kept / tiles):.0f}% fewer)"
    )
    result(
        "tile",
        reference.seconds / ours.seconds,
        slipway_mpx_s=mpx / ours.seconds,
        vips_mpx_s=mpx / reference.seconds,
        slipway_rss_mib=ours.peak_rss_mib,
        vips_rss_mib=reference.peak_rss_mib,
        files_layout_mpx_s=mpx / files.seconds,
        files_layout_rss_mib=files.peak_rss_mib,
        tiles=tiles,
        tiles_skip_blanks=kept,
        side_px=side,
        source_mib=size / 2**20,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--slipway"]:
        slipway_side(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["--vips"]:
        vips_side(sys.argv[2], int(sys.argv[3]))
    else:
        main()
