"""The pixels of a fanned-out slide (docs/tiling.md#fan-out): a region's levels from its
rectangle of level 0, and the finish: the levels above the regions' smallest, stitched
from that level's tiles, then the descriptor. Orchestration: slipway.fanout."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyvips

from slipway import fanout, storage, tilestore, tiling, uploads
from slipway.config import settings
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent
from slipway.fanout import Plan, Region
from slipway.jobs import Job
from slipway.worker import Lease

log = logging.getLogger(__name__)
FETCHERS = 16  # parallel ranged GETs of the finish job's tiles


def plan_for(bucket: str, key: str, size: int, options: tiling.TileOptions) -> Plan | None:
    """The regions of this source if it is to be fanned out, else None (single pass).
    Only TIFF-family slides are (their level 0 has random access); the header is read,
    no pixel decoded."""
    if options.layout != "archive" or options.overlap != 0 or options.skip_blanks >= 0:
        return None
    source = storage.RangedReader(bucket, key, size)
    slide = None
    try:
        if tiling.sniff(source.read(tiling.SNIFF_BYTES)) != "tiff":
            return None
        source.seek(0)
        slide = tiling.open_slide(source, size)
        width, height = slide.source["width"], slide.source["height"]
        tiling.check_pixels(width, height, size)
        if not fanout.wanted(width, height, options.layout, options.overlap, bool(slide.window)):
            return None
        s = settings()
        return fanout.plan(
            width, height, options.tile_size, s.tile_region_pixels, s.tile_region_depth
        )
    finally:
        for close in reversed(slide.close if slide else []):
            close()
        source.close()


def _renamer(layout: Plan, region: Region) -> tilestore.Rename:
    """The region's dzsave tile names → the slide's, for its depth + 1 largest levels."""
    own_levels = fanout.levels_for(region.width, region.height)
    top = layout.levels - 1

    def rename(name: str) -> str | None:
        level, _, tile = name.partition("/")
        below = own_levels - 1 - int(level)
        if below > layout.depth:
            return None
        stem, _, ext = tile.partition(".")
        col, _, row = stem.partition("_")
        span = layout.tile_size << below
        return f"{top - below}/{int(col) + region.x // span}_{int(row) + region.y // span}.{ext}"

    return rename


def tile_region(
    bucket: str,
    key: str,
    size: int,
    out_bucket: str,
    prefix: str,
    lease: Lease,
    options: tiling.TileOptions,
    layout: Plan,
    region: Region,
) -> dict[str, Any]:
    """One region's tiles (levels L-1 … L-1-depth) into an archive of its own; its index
    names the slide's tiles. No descriptor: the finish job writes it."""
    source = storage.RangedReader(bucket, key, size)
    writer = tilestore.ArchiveWriter(out_bucket, prefix, lease, _renamer(layout, region))
    apex_level = f"{layout.levels - 1 - layout.depth}/"
    apex: list[tuple[str, bytes]] = []  # the finish job's input, kept in one object
    writer.on_tile = lambda name, data: (
        apex.append((name, data)) if name.startswith(apex_level) else None
    )
    slide = None
    try:
        slide = tiling.open_slide(source, size)
        tiling.check_pixels(slide.source["width"], slide.source["height"], size)
        if (slide.source["width"], slide.source["height"]) != (layout.width, layout.height):
            raise SlipwayError(Code.IMAGE_UNREADABLE, "the slide is not the size it was planned at")
        if slide.window is None:
            raise SlipwayError(Code.IMAGE_UNSUPPORTED, "this slide has no random access")
        box = (region.x, region.y, region.width, region.height)
        image = tiling._displayable(slide.window(*box))
        tiling.dzsave(image, writer, source, slide, lease, options)
        writer.index_extra["apex"] = _store_apex(out_bucket, prefix, apex)
        writer.finish(descriptor=False)
    except BaseException:
        writer.abandon()
        raise
    finally:
        for close in reversed(slide.close if slide else []):
            close()
        source.close()
    return {"tilesPrefix": prefix, "index": tilestore.index_key(prefix), "tileCount": writer.tiles}


def _store_apex(bucket: str, prefix: str, tiles: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The region's tiles of its smallest level, again, as one object (under the region's
    attempt prefix): the finish job reads them with one GET per region, not one per tile."""
    where, offset = {}, 0
    for name, data in tiles:
        where[name] = [offset, len(data)]
        offset += len(data)
    key = f"{prefix}apex.bin"
    storage.put_bytes(bucket, key, b"".join(d for _, d in tiles), "application/octet-stream")
    return {"key": key, "tiles": where}


def _apex(out_bucket: str, layout: Plan, results: list[dict[str, Any]]) -> pyvips.Image:
    """Level L-1-depth of the slide, from the regions' tiles of it (decoded: a JPEG
    pyramid's levels above it carry one more JPEG generation, docs/tiling.md#fan-out)."""
    scale = 1 << layout.depth
    width, height = -(-layout.width // scale), -(-layout.height // scale)
    size = layout.tile_size
    across, down = -(-width // size), -(-height // size)

    def fetch(result: dict[str, Any]) -> dict[tuple[int, int], bytes]:
        apex = tilestore.read_index(out_bucket, result["index"])["apex"]
        data = storage.read_bytes(out_bucket, apex["key"])
        found = {}
        for name, (offset, length) in apex["tiles"].items():
            col, _, row = name.partition("/")[2].partition(".")[0].partition("_")
            found[int(col), int(row)] = data[offset : offset + length]
        return found

    wanted: dict[tuple[int, int], bytes] = {}
    with ThreadPoolExecutor(FETCHERS, thread_name_prefix="apex") as pool:
        for found in pool.map(fetch, results):
            wanted |= found
    cells = [(c, r) for r in range(down) for c in range(across)]
    missing = [cell for cell in cells if cell not in wanted]
    if missing:
        raise SlipwayError(Code.IMAGE_UNREADABLE, f"the regions lack {len(missing)} tiles")
    # compressed in memory, decoded as dzsave reads them
    tiles = [pyvips.Image.new_from_buffer(wanted[c], "", access="sequential") for c in cells]
    joined = pyvips.Image.arrayjoin(tiles, across=across, hspacing=size, vspacing=size)
    return joined.crop(0, 0, width, height)


_SIZE = re.compile(rb'(Width|Height)="\d+"')


def tile_finish(
    bucket: str,
    key: str,
    size: int,
    out_bucket: str,
    prefix: str,
    lease: Lease,
    options: tiling.TileOptions,
    layout: Plan,
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """The levels above the regions' (from their smallest level), the associated images,
    the index naming every region's archive, the descriptor last: what `tiling.tile`
    returns for a single pass."""
    apex_level = layout.levels - 1 - layout.depth
    writer = tilestore.ArchiveWriter(
        out_bucket,
        prefix,
        lease,
        lambda name: name if int(name.partition("/")[0]) < apex_level else None,
    )
    writer.index_extra = {
        "version": 2,
        "levels": layout.levels,
        "depth": layout.depth,
        "tileSize": layout.tile_size,
        "regions": [
            {"x": r.x, "y": r.y, "width": r.width, "height": r.height, "index": res["index"]}
            for r, res in zip(layout.regions, results, strict=True)
        ],
    }
    source = storage.RangedReader(bucket, key, size)
    stored: list[str] = []
    slide = None
    try:
        slide = tiling.open_slide(source, size)
        image = _apex(out_bucket, layout, results)
        lease.check()
        tiling.dzsave(image, writer, source, slide, lease, options)
        associated = tiling.store_associated(out_bucket, prefix, slide.associated, stored)
        if writer.descriptor is None:
            raise RuntimeError("dzsave produced no .dzi descriptor")
        full = {b"Width": layout.width, b"Height": layout.height}
        writer.descriptor = _SIZE.sub(
            lambda m: m[1] + b'="' + str(full[m[1]]).encode() + b'"', writer.descriptor
        )
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
        "width": layout.width,
        "height": layout.height,
        "tileSize": options.tile_size,
        "overlap": options.overlap,
        "format": options.format,
        "levels": layout.levels,
        "tileCount": writer.tiles + sum(int(r["tileCount"]) for r in results),
        "tilesPrefix": prefix,
        "layout": "archive",
        "source": slide.source,
        "associated": associated,
    }


# the job handlers (tile function) ------------------------------------------------------


def run_region(job: Job, lease: Lease) -> list[NewEvent]:
    """A `tile_region` job: its rectangle's levels, under its own attempt's prefix."""
    fanout.check_parent(job)
    upload = uploads.ready_for(job.upload_id, "tile")
    s = settings()
    layout = Plan.from_json(job.payload["plan"])
    region = layout.regions[int(job.payload["region"])]
    prefix = tilestore.begin_attempt(
        s.tiles_bucket, storage.slide_prefix(upload.id), job.id, job.attempt_count
    )
    result = tile_region(
        s.data_bucket,
        upload.blob_key,
        upload.size,
        s.tiles_bucket,
        prefix,
        lease,
        tiling.TileOptions.from_env(),
        layout,
        region,
    )
    fanout.check_parent(job)
    lease.progress["region"] = region.index
    payload = {
        "parentId": job.payload["parentId"],
        "fanoutId": job.payload["fanoutId"],
        "region": region.index,
        **result,
    }
    return [NewEvent("v1.tile.region_tiled", "job", job.id, payload)]


def run_finish(job: Job, lease: Lease) -> list[NewEvent]:
    """A `tile_finish` job: the top levels and the descriptor; the slide is tiled."""
    fanout.check_parent(job)
    upload = uploads.ready_for(job.upload_id, "tile")
    s = settings()
    layout = Plan.from_json(job.payload["plan"])
    results = fanout.region_results(job)
    prefix = tilestore.begin_attempt(
        s.tiles_bucket, storage.slide_prefix(upload.id), job.id, job.attempt_count
    )
    result = tile_finish(
        s.data_bucket,
        upload.blob_key,
        upload.size,
        s.tiles_bucket,
        prefix,
        lease,
        tiling.TileOptions.from_env(),
        layout,
        results,
    )
    fanout.check_parent(job)
    log.info(
        "slide tiled (fanned out)",
        extra={"upload_id": str(upload.id), "tiles": result["tileCount"]},
    )
    tiled = {"jobId": job.payload["parentId"], **result}
    return [NewEvent("v1.slide.tiled", "slide", upload.id, tiled)]
