"""Line-scan tiles: tiles/s stored through the API (`PUT /v1/line-scans/{scan}/tiles/{tile}`,
DB-first: the tile's attempt and its result are events) with 8 clients, vs the same
number of plain pre-signed S3 PUTs of the same bytes from the same client, 8 at a time,
to the same LocalStack. Ratio: Slipway's tiles/s ÷ the plain PUTs' per s. Each side's CPU
per tile, by process (Postgres, LocalStack, the function instances, the gateway, this
client), is printed too: everything shares this machine's cores.

The reference's URLs are signed before its clock starts: it is the storage write alone.

Usage: python bench/linescan.py [tiles] [tile_kib]   (the stack must be up: make up)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import local

import boto3
import requests
from botocore.config import Config

from bench.common import cpu_per_item, measure, process_cpu, result, use_stack
from slipway.client import Client

CLIENTS = 8


def timed(count: int, put: Callable[[int], None]) -> tuple[float, dict[str, float]]:
    """Run put(0..count-1) on CLIENTS threads: the wall time in seconds, and the CPU per
    put of each process group meanwhile (bench.common.cpu_per_item)."""
    before, started = process_cpu(), time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for _ in pool.map(put, range(count)):
            pass
    return time.perf_counter() - started, cpu_per_item(before, process_cpu(), count)


def slipway_side(env: dict[str, str], tiles: list[bytes]) -> tuple[float, dict[str, float]]:
    token = measure([sys.executable, "-m", "slipway.cli", "token", "--user", "bench"]).output
    clients = local()  # one HTTP session per client thread
    scan = str(uuid.uuid4())

    def put(i: int, bodies: list[bytes]) -> None:
        if not hasattr(clients, "client"):
            clients.client = Client(env["SLIPWAY_API_URL"], token.strip())
        stored = clients.client.put_tile(scan, str(uuid.uuid4()), bodies[i])
        assert stored["state"] == "ready", stored

    # start the function's instances, one per client, first: cold starts are coldstart.py's
    warm_tiles = [os.urandom(len(tiles[0])) for _ in range(2 * CLIENTS)]
    timed(len(warm_tiles), lambda i: put(i, warm_tiles))
    return timed(len(tiles), lambda i: put(i, tiles))


def s3_side(env: dict[str, str], tiles: list[bytes]) -> tuple[float, dict[str, float]]:
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    bucket, prefix = env["SLIPWAY_UPLOADS_BUCKET"], f"bench/linescan-{uuid.uuid4()}"
    urls = [
        s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": f"{prefix}/{i}"}, ExpiresIn=3600
        )
        for i in range(len(tiles))
    ]
    sessions = local()

    def put(i: int) -> None:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        reply = sessions.session.put(urls[i], data=tiles[i], timeout=60)
        reply.raise_for_status()

    return timed(len(tiles), put)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    size = int(sys.argv[2]) * 1024 if len(sys.argv) > 2 else 64 * 1024
    env = use_stack()
    tiles = [os.urandom(size) for _ in range(count)]  # distinct bytes: no deduplication
    (ours_s, ours_cpu), (plain_s, plain_cpu) = slipway_side(env, tiles), s3_side(env, tiles)
    ours, plain = count / ours_s, count / plain_s
    print(f"plain pre-signed S3 PUTs ({CLIENTS} clients, {size // 1024} KiB): {plain:,.0f}/s")
    print(f"slipway PUT /v1/line-scans/…/tiles/… ({CLIENTS} clients): {ours:,.0f} tiles/s")
    for side, spent in (("slipway", ours_cpu), ("s3", plain_cpu)):  # one machine's cores
        print(f"CPU per tile, {side}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in spent.items()))
    result(
        "linescan",
        ours / plain,
        slipway_tiles_per_s=ours,
        s3_puts_per_s=plain,
        slipway_cpu_ms=ours_cpu["total"],
        s3_cpu_ms=plain_cpu["total"],
        clients=CLIENTS,
        tiles=count,
        tile_kib=size // 1024,
    )


if __name__ == "__main__":
    main()
