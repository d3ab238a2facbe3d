"""Per-core rates for docs/scaling.md (issue 11's "Scale on paper"), measured on this machine.

- `sha256` (and `sha256_nosha`: OpenSSL told not to use the CPU's SHA extensions),
  `blake3_1` (one thread), `blake3_auto` (BLAKE3's own threads, all cores) and
  `verify` (`slipway.digests.Hasher`, what verification runs: SHA-256 then BLAKE3 on each
  8 MiB chunk) over `--gib` GiB of random bytes in 8 MiB chunks;
- `tile_1`, `tile_2`: JPEG decode + `dzsave` (256 px, overlap 0, JPEG Q 85, one stored ZIP
  stream to a discarding target: the tile function's call, minus S3) of a generated
  JPEG-tiled TIFF (tile 256, Q 85, dense tissue-like texture at about 1.1 bits per pixel,
  the density of a 20 GiB / 150 Gpx Aperio slide), with `VIPS_CONCURRENCY` 1 and 2;
- `decode_1`: the JPEG decode alone (`avg()` over level 0), `VIPS_CONCURRENCY=1`;
- `reads` (with `--reads W,H,RW`): one fan-out region's block fetches of a wide slide
  (`storage.RangedReader` over the local file) against the bytes it needs;
- `index`: the `archive` layout's tile index (`tilestore.ArchiveWriter.seal`'s JSON, gzip):
  bytes per tile, and the CPU time, wall time and memory to load it (`tilestore._index`)
  per million tiles.

Each measurement runs in a fresh process, round-robin over `--runs` rounds, and reports
wall time and CPU time (all threads, `getrusage`). The per-core rate is the work divided
by CPU seconds: on a shared machine it moves less than wall time does. Medians are
printed. S3 throughput is not measured: the local stack is not S3 (docs/scaling.md).

    .venv/bin/python bench/rates.py [--side 16384] [--runs 5] [--gib 1] [--tiles 500000]
                                    [--reads 500000,2048,45056]

Last line: `RESULT rates ratio=<verify MB/s ÷ sha256 MB/s, per CPU-second> key=value …`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import gzip
import hashlib
import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.common import DATA, ROOT, result

MiB = 1024 * 1024
MB = 1e6
CHUNK = 8 * MiB  # storage.iter_chunks' chunk
NOISE_SIGMA = 5.0  # gives about 1.1 bits per pixel at Q 85 (20 GiB / 150 Gpx = 1.15)
HASHES = ("sha256", "sha256_nosha", "blake3_1", "blake3_auto", "verify")
# OpenSSL without the SHA extensions (CPUID.7.EBX bit 29): AWS does not say whether
# Lambda's x86 hosts have them, so SHA-256 is measured both ways
NO_SHA_EXTENSIONS = {"OPENSSL_ia32cap": ":~0x20000000"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hwm_mib() -> float:
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def make_slide(width: int, height: int | None = None) -> Path:
    """A JPEG-tiled BigTIFF (256 × 256 tiles, Q 85) of dense, tissue-like texture, once."""
    height = height or width
    name = f"{width}" if width == height else f"{width}x{height}"
    path = DATA / f"rates-{name}-s{NOISE_SIGMA:g}.tif"
    if path.exists():
        return path
    import pyvips

    DATA.mkdir(parents=True, exist_ok=True)
    texture = pyvips.Image.perlin(width, height, cell_size=32, seed=5).linear(50, 160)
    coarse = pyvips.Image.perlin(width, height, cell_size=256, seed=7).linear(40, 0)
    noise = pyvips.Image.gaussnoise(width, height, sigma=NOISE_SIGMA, mean=0, seed=11)
    base = texture + coarse + noise
    image = base.bandjoin([base * 0.62 + 30, base * 0.85 + 20]).cast("uchar")
    part = path.with_suffix(".part")
    image.copy(interpretation="srgb").tiffsave(
        str(part),
        tile=True,
        tile_width=256,
        tile_height=256,
        compression="jpeg",
        Q=85,
        bigtiff=True,
    )
    part.rename(path)
    return path


# children: one measurement each, in a fresh process ---------------------------------------


def hash_child(name: str, gib: float) -> dict[str, Any]:
    from blake3 import blake3

    from slipway.digests import Hasher

    data = memoryview(os.urandom(64 * MiB))
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    total = int(gib * 1024) * MiB
    update: Callable[[memoryview], Any]
    if name.startswith("sha256"):
        update = hashlib.sha256().update
    elif name == "blake3_1":
        update = blake3(max_threads=1).update
    elif name == "blake3_auto":
        update = blake3(max_threads=blake3.AUTO).update
    else:
        update = Hasher().update
    cpu, wall = cpu_seconds(), time.perf_counter()
    for i in range(total // CHUNK):
        update(chunks[i % len(chunks)])
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu_seconds() - cpu,
        "mb": total / MB,
    }


def tile_child(path: str) -> dict[str, Any]:
    import pyvips

    image = pyvips.Image.new_from_file(path, access="sequential")
    written = 0

    def on_write(data: bytes) -> int:
        nonlocal written
        written += len(data)
        return len(data)

    target = pyvips.TargetCustom()
    target.on_write(on_write)
    target.on_end(lambda: 0)
    cpu, wall = cpu_seconds(), time.perf_counter()
    image.dzsave_target(  # tiling.tile's call, default options
        target,
        basename="slide",
        container="zip",
        compression=0,
        tile_size=256,
        overlap=0,
        suffix=".jpeg[Q=85]",
    )
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu_seconds() - cpu,
        "mpx": image.width * image.height / 1e6,
        "out_bytes": written,
        "rss_mib": hwm_mib(),
    }


def decode_child(path: str) -> dict[str, Any]:
    import pyvips

    image = pyvips.Image.new_from_file(path, access="sequential")
    cpu, wall = cpu_seconds(), time.perf_counter()
    image.avg()
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu_seconds() - cpu,
        "mpx": image.width * image.height / 1e6,
        "in_bytes": Path(path).stat().st_size,
    }


def index_child(tiles: int) -> dict[str, Any]:
    """An index shaped as ArchiveWriter.seal writes it, of `tiles` tiles of about 9 KB."""
    entries: dict[str, list[int]] = {}
    level, offset = 19, 0
    while len(entries) < tiles:
        side = 1954  # columns of a 500,000 px wide level 0
        for n in range(min(tiles - len(entries), side * 1172)):
            name = f"{level}/{n % side}_{n // side}.jpeg"
            size = 9000 + (n * 7919) % 4000
            entries[name] = [offset + 30 + len(name) + 16, size]
            offset += 30 + len(name) + 16 + size
        level -= 1
    body = json.dumps({"archive": "slides/x/y/1/slide.zip", "tiles": entries}).encode()
    packed = gzip.compress(body, mtime=0)
    del entries, body
    rss = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    cpu, wall = cpu_seconds(), time.perf_counter()
    loaded = json.loads(gzip.decompress(packed))
    took = time.perf_counter() - wall
    after = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    assert len(loaded["tiles"]) == tiles
    return {
        "wall_s": took,
        "cpu_s": cpu_seconds() - cpu,
        "gz_bytes": len(packed),
        "tiles": tiles,
        "rss_growth_mib": after - rss,
    }


def reads_child(arg: str) -> dict[str, Any]:
    """One fan-out region's reads of a wide slide: `slipway.storage.RangedReader` (8 MiB
    blocks, one ahead) over the local file instead of S3, counting its block fetches,
    while `dzsave` tiles the region as `slipway.regions.tile_region` does."""
    import pyvips

    from slipway import storage, tiling

    width, height, region_width = (int(v) for v in arg.split(","))
    path = make_slide(width, height)
    size = path.stat().st_size
    counts = {"gets": 0, "bytes": 0}
    fd = os.open(path, os.O_RDONLY)

    class LocalRanged(storage.RangedReader):
        def _fetch(self, index: int) -> bytes:
            start = index * self.block
            length = min(start + self.block, self.size) - start
            counts["gets"] += 1
            counts["bytes"] += length
            return os.pread(fd, length, start)

    source = LocalRanged("local", str(path), size)
    slide = tiling.open_slide(source, size)
    if slide.window is None:
        raise SystemExit("this slide reader has no random access (slide.window)")
    counts.update(gets=0, bytes=0)  # the header's reads are not the region's
    x = width // 2 // 8192 * 8192  # a block-aligned region in the middle, full height
    target = pyvips.TargetCustom()
    target.on_write(lambda data: len(data))
    target.on_end(lambda: 0)
    slide.window(x, 0, region_width, height).dzsave_target(
        target,
        basename="slide",
        container="zip",
        compression=0,
        tile_size=256,
        overlap=0,
        suffix=".jpeg[Q=85]",
    )
    os.close(fd)
    rows = -(-height // 256)
    return {
        "gets": counts["gets"],
        "read_mb": counts["bytes"] / MB,
        "needed_mb": size * region_width / width / MB,
        "rows": rows,
        "row_mb": size / rows / MB,
    }


def child(kind: str, arg: str) -> None:
    if kind in HASHES:
        done = hash_child(kind, float(arg))
    elif kind.startswith("tile"):
        done = tile_child(arg)
    elif kind.startswith("decode"):
        done = decode_child(arg)
    elif kind == "reads":
        done = reads_child(arg)
    else:
        done = index_child(int(arg))
    print(json.dumps(done))


def run(kind: str, arg: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.rates", "--child", kind, arg],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{kind} failed: {done.stderr.strip()[-500:]}")
    reported: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return reported


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=16384, help="slide side, px (16384)")
    parser.add_argument("--runs", type=int, default=5, help="rounds (5); medians reported")
    parser.add_argument("--gib", type=float, default=1.0, help="GiB hashed per run (1)")
    parser.add_argument("--tiles", type=int, default=500_000, help="tiles in the index")
    parser.add_argument(
        "--reads",
        metavar="W,H,RW",
        help="also count one region's reads of a W × H slide, region RW wide "
        "(docs/scaling.md: 500000,2048,45056; generates a 144 MB slide once)",
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ARG"))
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    slide = str(make_slide(args.side))
    size = Path(slide).stat().st_size
    print(f"slide {args.side}² px, {size / MiB:.0f} MiB, {size * 8 / args.side**2:.2f} bits/px")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    plan: dict[str, tuple[str, dict[str, str]]] = {
        **{name: (str(args.gib), {}) for name in HASHES},
        "sha256_nosha": (str(args.gib), NO_SHA_EXTENSIONS),
        "tile_1": (slide, {"VIPS_CONCURRENCY": "1"}),
        "tile_2": (slide, {"VIPS_CONCURRENCY": "2"}),
        "decode_1": (slide, {"VIPS_CONCURRENCY": "1"}),
        "index": (str(args.tiles), {}),
    }
    reads: dict[str, Any] = {}
    if args.reads:
        reads = run("reads", args.reads)
        print(
            f"region reads: {reads['gets']} GETs for {reads['rows']} tile rows of "
            f"{reads['row_mb']:.1f} MB, {reads['read_mb']:.0f} MB read for "
            f"{reads['needed_mb']:.1f} MB needed ({reads['read_mb'] / reads['needed_mb']:.1f}×)",
            flush=True,
        )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in plan}
    for round_ in range(args.runs):
        for name, (arg, env) in plan.items():
            runs[name].append(run(name, arg, env))
        print(f"round {round_ + 1}/{args.runs} done, load {os.getloadavg()[0]:.2f}", flush=True)

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    def spread(name: str, work: str, key: str) -> str:
        rates = sorted(r[work] / r[key] for r in runs[name])
        return f"{rates[0]:.0f}–{rates[-1]:.0f}"

    rates: dict[str, float] = {}
    print(f"\n{'measurement':<12} {'per CPU-s':>12} {'per wall-s':>12}   range (wall)")
    for name in HASHES:
        cpu = statistics.median(r["mb"] / r["cpu_s"] for r in runs[name])
        wall = statistics.median(r["mb"] / r["wall_s"] for r in runs[name])
        rates[f"{name}_mb_per_cpu_s"], rates[f"{name}_mb_per_s"] = cpu, wall
        print(f"{name:<12} {cpu:>7.0f} MB/s {wall:>7.0f} MB/s   {spread(name, 'mb', 'wall_s')}")
    for name in ("tile_1", "tile_2", "decode_1"):
        cpu = statistics.median(r["mpx"] / r["cpu_s"] for r in runs[name])
        wall = statistics.median(r["mpx"] / r["wall_s"] for r in runs[name])
        rates[f"{name}_mpx_per_cpu_s"], rates[f"{name}_mpx_per_s"] = cpu, wall
        print(f"{name:<12} {cpu:>6.1f} Mpx/s {wall:>6.1f} Mpx/s   {spread(name, 'mpx', 'wall_s')}")
    out_bits = med("tile_1", "out_bytes") * 8 / (args.side**2 * 4 / 3)
    print(
        f"tiles: {out_bits:.2f} bits per output px (pyramid ≈ 4/3 of level 0), "
        f"peak RSS {max(r['rss_mib'] for r in runs['tile_1'] + runs['tile_2']):.0f} MiB"
    )
    per_m = 1e6 / args.tiles
    gz_per_tile = med("index", "gz_bytes") / args.tiles
    load_s_per_m = med("index", "wall_s") * per_m
    load_cpu_s_per_m = med("index", "cpu_s") * per_m
    rss_per_m = med("index", "rss_growth_mib") * per_m
    print(
        f"index: {gz_per_tile:.1f} gz bytes/tile; per 1M tiles: load {load_cpu_s_per_m:.1f} "
        f"CPU-s ({load_s_per_m:.1f} s wall), +{rss_per_m:.0f} MiB RSS"
    )
    result(
        "rates",
        rates["verify_mb_per_cpu_s"] / rates["sha256_mb_per_cpu_s"],
        **{k: v for k, v in rates.items()},
        tile_out_bits_per_px=out_bits,
        index_gz_bytes_per_tile=gz_per_tile,
        index_load_cpu_s_per_m=load_cpu_s_per_m,
        index_load_s_per_m=load_s_per_m,
        index_rss_mib_per_m=rss_per_m,
        **(
            {
                "region_gets_per_row": reads["gets"] / reads["rows"],
                "region_read_amplification": reads["read_mb"] / reads["needed_mb"],
            }
            if reads
            else {}
        ),
        runs=args.runs,
        side=args.side,
        load1=os.getloadavg()[0],
    )


if __name__ == "__main__":
    main()
