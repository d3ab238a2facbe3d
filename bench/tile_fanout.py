"""Fan-out (docs/tiling.md#fan-out): one slide tiled single-pass vs as 4 regions run by 2
workers at a time plus the finish, S3 → S3 on the local stack, the same file. Prints the
wall times, each region's share of the work, peak RSS per process, and last
`RESULT tile_fanout ratio=<single-pass CPU s / fan-out CPU s>` (goal ≥ 0.85: splitting
costs under 15 % more work; the largest region ≤ 0.3 of the work; RSS ≤ 1 GiB each).

Usage: python bench/tile_fanout.py [side_px]   (default 50000: 2.5 Gpx; make up first, or
point SLIPWAY_ENV_FILE at another running stack's local.env)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.common import DATA, ROOT, itself, result, use_stack

WORKERS = 2
REGIONS = 4


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_rss_mib: float
    output: str


def run(argv: list[str]) -> Run:
    """A child process: wall time, CPU time (user + system) and peak RSS (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv[1:4])}… failed")
    wall = time.perf_counter() - started
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output)


def make_slide(side: int) -> Path:
    """Tissue-like islands on white as a tiled pyramidal JPEG BigTIFF (bench/tile.py's
    look, with its texture drawn at 1/4 scale: generating 2.5 Gpx stays minutes), written
    to a temporary name first, so an interrupted run leaves no truncated slide."""
    path = DATA / f"fanout-slide-{side}.tif"
    if path.exists():
        return path
    import pyvips

    DATA.mkdir(parents=True, exist_ok=True)
    small = side // 16
    mask = (pyvips.Image.perlin(small, small, cell_size=64, seed=3) > 0.1).ifthenelse(255, 0)
    mask = mask.cast("uchar").resize(16, kernel="linear")
    quarter = pyvips.Image.perlin(side // 4, side // 4, cell_size=4, seed=5).linear(60, 150)
    texture = quarter.resize(4, kernel="linear").crop(0, 0, side, side)
    tissue = texture.bandjoin([texture * 0.6, texture * 0.9]).cast("uchar")
    white = pyvips.Image.black(side, side, bands=3) + 255
    slide = (mask > 128).ifthenelse(tissue, white).cast("uchar").copy(interpretation="srgb")
    partial = path.with_suffix(".partial")
    slide.tiffsave(
        str(partial),
        tile=True,
        pyramid=True,
        compression="jpeg",
        Q=85,
        tile_width=256,
        tile_height=256,
        bigtiff=True,
    )
    partial.rename(path)
    return path


def _env() -> tuple[str, str]:
    """The running stack's buckets (SLIPWAY_ENV_FILE: another stack's local.env)."""
    other = os.environ.get("SLIPWAY_ENV_FILE")
    if other:
        lines = Path(other).read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        os.environ.update(env)
    else:
        env = use_stack()
    return env["SLIPWAY_DATA_BUCKET"], env["SLIPWAY_TILES_BUCKET"]


def single_side(key: str, size: int, prefix: str) -> None:
    from slipway import tiling
    from slipway.worker import Lease

    data, tiles = _env()
    out = tiling.tile(
        data, key, size, tiles, prefix, Lease.detached("tile", "bench"), tiling.TileOptions()
    )
    print(out["tileCount"])


def region_side(key: str, size: int, plan: str, index: int, prefix: str) -> None:
    from slipway import regions, tiling
    from slipway.fanout import Plan
    from slipway.worker import Lease

    data, tiles = _env()
    layout = Plan.from_json(json.loads(plan))
    stored = regions.tile_region(
        data,
        key,
        size,
        tiles,
        prefix,
        Lease.detached("tile_region", "bench"),
        tiling.TileOptions(),
        layout,
        layout.regions[index],
    )
    print(json.dumps(stored))


def finish_side(key: str, size: int, plan: str, results: str, prefix: str) -> None:
    from slipway import regions, tiling
    from slipway.fanout import Plan
    from slipway.worker import Lease

    data, tiles = _env()
    out = regions.tile_finish(
        data,
        key,
        size,
        tiles,
        prefix,
        Lease.detached("tile_finish", "bench"),
        tiling.TileOptions(),
        Plan.from_json(json.loads(plan)),
        json.loads(results),
    )
    print(out["tileCount"])


def main() -> None:
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    data_bucket, tiles_bucket = _env()
    from slipway import fanout, storage, tilestore

    path = make_slide(side)
    size = path.stat().st_size
    key = f"bench/{path.name}"
    if (storage.head(data_bucket, key) or storage.ObjectInfo(0, "", "")).size != size:
        storage.upload_file(str(path), data_bucket, key, "image/tiff")
    layout = fanout.plan(side, side, 256, -(-side * side // REGIONS))
    assert len(layout.regions) == REGIONS, layout
    plan = json.dumps(layout.to_json())
    base = f"bench/fanout-{uuid.uuid4()}/"
    try:
        single = run(itself("--single", key, str(size), f"{base}single/"))
        storage_tiles = int(single.output.split()[-1])
        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            parts = list(
                pool.map(
                    lambda r: run(
                        itself("--region", key, str(size), plan, str(r.index), f"{base}r{r.index}/")
                    ),
                    layout.regions,
                )
            )
        results = json.dumps([json.loads(p.output.splitlines()[-1]) for p in parts])
        finish = run(itself("--finish", key, str(size), plan, results, f"{base}top/"))
        fan_wall = time.perf_counter() - started
        fan_tiles = int(finish.output.split()[-1])
    finally:
        tilestore.delete_under(tiles_bucket, base)
    if fan_tiles != storage_tiles:
        sys.exit(f"the fan-out wrote {fan_tiles} tiles, the single pass {storage_tiles}")
    fan_cpu = sum(p.cpu for p in parts) + finish.cpu
    region_cpu = sum(p.cpu for p in parts)
    mpx = side * side / 1e6
    print(
        f"slide: {side} × {side} ({mpx:.0f} Mpx), {size / 2**20:.0f} MiB JPEG TIFF, "
        f"{storage_tiles} tiles; plan: {REGIONS} regions, depth {layout.depth}"
    )
    print(
        f"single pass:  wall {single.wall:6.1f} s, CPU {single.cpu:6.1f} s, "
        f"peak RSS {single.peak_rss_mib:4.0f} MiB, {mpx / single.wall:5.1f} Mpx/s wall, "
        f"{mpx / single.cpu:5.1f} Mpx per CPU s"
    )
    for region, part in zip(layout.regions, parts, strict=True):
        print(
            f"  region {region.index} {region.width}×{region.height} at "
            f"({region.x}, {region.y}): wall {part.wall:6.1f} s, CPU {part.cpu:6.1f} s "
            f"({part.cpu / region_cpu:5.1%} of the regions' work, "
            f"{region.pixels / (side * side):5.1%} of the pixels), "
            f"peak RSS {part.peak_rss_mib:4.0f} MiB"
        )
    print(
        f"  finish: wall {finish.wall:6.1f} s, CPU {finish.cpu:6.1f} s, "
        f"peak RSS {finish.peak_rss_mib:4.0f} MiB"
    )
    print(f"fan-out ({WORKERS} workers): wall {fan_wall:6.1f} s, CPU {fan_cpu:6.1f} s")
    largest = max(p.cpu for p in parts) / fan_cpu
    result(
        "tile_fanout",
        single.cpu / fan_cpu,
        single_wall_s=single.wall,
        single_cpu_s=single.cpu,
        fanout_wall_s=fan_wall,
        fanout_cpu_s=fan_cpu,
        largest_region_share=largest,
        single_rss_mib=single.peak_rss_mib,
        region_rss_mib=max(p.peak_rss_mib for p in parts),
        finish_rss_mib=finish.peak_rss_mib,
        mpx_per_cpu_s=mpx / single.cpu,
        side_px=side,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--single"]:
        single_side(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["--region"]:
        region_side(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1:2] == ["--finish"]:
        finish_side(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        main()
