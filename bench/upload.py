"""The CLI's multipart upload of a 1 GiB file vs boto3's TransferManager uploading the same
file to the same local S3 server. Ratio: Slipway's throughput / boto3's (goal ≥ 0.9);
also MB/s and the client's peak RSS (goal ≤ 200 MiB, whatever the file size).

Usage: python bench/upload.py [size_mib]   (the stack must be up: make up)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import os
import time

from bench.common import DATA, Measured, MiB, itself, measure, result, stack_env, use_stack

PARALLEL = 8


def make_file(size: int) -> str:
    path = DATA / f"upload-{size // MiB}MiB.bin"
    if not path.exists() or path.stat().st_size != size:
        DATA.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            block = os.urandom(16 * MiB)
            for i in range(size // len(block)):
                f.write(block[:8] + i.to_bytes(8, "big") + block[16:])  # unique blocks
    return str(path)


def boto3_side(path: str) -> None:
    """The reference: TransferManager with the same part size and concurrency."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    env = use_stack()
    s3 = boto3.client(
        "s3", config=Config(s3={"addressing_style": "path"}, max_pool_connections=PARALLEL * 2)
    )
    config = TransferConfig(
        multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=PARALLEL
    )
    s3.upload_file(path, env["SLIPWAY_UPLOADS_BUCKET"], "bench/boto3-reference", Config=config)


def main() -> None:
    size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 1024 * MiB
    env = stack_env()
    path = make_file(size)
    token = measure([sys.executable, "-m", "slipway.cli", "token", "--user", "bench"]).output
    cli = [
        sys.executable,
        "-m",
        "slipway.cli",
        "upload",
        path,
        "--kind",
        "slide",
        "--quiet",
        "--parallel",
        str(PARALLEL),
    ]
    cli_env = {"SLIPWAY_TOKEN": token.strip(), "XDG_STATE_HOME": str(DATA / "state")}
    best: dict[str, Measured] = {}
    for _ in range(3):  # interleaved rounds; the best of each (this machine is noisy)
        reference = measure(itself("--boto3", path))
        ours = measure(cli, cli_env)
        for name, m in (("boto3", reference), ("slipway", ours)):
            if name not in best or m.seconds < best[name].seconds:
                best[name] = m
        upload_id = ours.output.strip()
        started = time.perf_counter()
        state = wait_ready(env, upload_id, token.strip())
        verify_seconds = time.perf_counter() - started
    ref, mine = best["boto3"], best["slipway"]
    mb = size / 1e6
    print(
        f"boto3 TransferManager: {mb / ref.seconds:.0f} MB/s, peak RSS {ref.peak_rss_mib:.0f} MiB"
    )
    print(
        f"slipway upload (CLI):  {mb / mine.seconds:.0f} MB/s, peak RSS {mine.peak_rss_mib:.0f} MiB"
    )
    print(f"server-side verification after the last upload: {state} in {verify_seconds:.1f} s")
    result(
        "upload",
        ref.seconds / mine.seconds,
        slipway_mbps=mb / mine.seconds,
        boto3_mbps=mb / ref.seconds,
        slipway_rss_mib=mine.peak_rss_mib,
        boto3_rss_mib=ref.peak_rss_mib,
        size_mib=size // MiB,
    )


def wait_ready(env: dict[str, str], upload_id: str, token: str) -> str:
    import requests

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        reply = requests.get(
            f"{env['SLIPWAY_API_URL']}/v1/uploads/{upload_id}",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
        state = str(json.loads(reply.text)["state"])
        if state != "pending":
            return state
        time.sleep(0.5)
    return "pending"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--boto3":
        boto3_side(sys.argv[2])
    else:
        main()
