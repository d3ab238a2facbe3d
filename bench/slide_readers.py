"""Time and peak RSS of reading + tiling each slide format, per reader, no storage:
the file is read through the same file-like interface as a RangedReader, and dzsave's
ZIP stream is discarded. Each case runs in a fresh process (its own peak RSS).

    .venv/bin/python -m bench.slide_readers [--side 8192]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyvips

from slipway import tiling
from tests.fixtures.slides import make_slides


class FileReader:
    """A local file behind RangedReader's interface (8 MiB per read, like its blocks)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "rb")  # noqa: SIM115
        self.size = Path(path).stat().st_size
        self.position = 0
        self.error: BaseException | None = None

    def read(self, length: int = -1) -> bytes:
        length = self.size - self.position if length < 0 else length
        self.file.seek(self.position)
        data = self.file.read(min(length, 8 * 1024 * 1024))
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = max(0, {0: 0, 1: self.position, 2: self.size}[whence] + offset)
        return self.position

    def close(self) -> None:
        self.file.close()


def dzsave(image: pyvips.Image) -> None:
    target = pyvips.TargetCustom()
    target.on_write(lambda data: len(data))
    target.on_end(lambda: 0)
    image.dzsave_target(
        target,
        basename="slide",
        container="zip",
        compression=0,
        tile_size=256,
        overlap=0,
        suffix=".jpeg[Q=85]",
    )


def run(path: str, reader: str) -> dict[str, Any]:
    started = time.perf_counter()
    if reader == "openslide":
        import openslide

        slide = openslide.OpenSlide(path)
        width, height = slide.dimensions
        rgba = np.asarray(slide.read_region((0, 0), 0, (width, height)))
        image = pyvips.Image.new_from_array(rgba).flatten(background=[255, 255, 255])
    else:
        source = FileReader(path)
        opened = tiling.open_slide(source, source.size)  # type: ignore[arg-type]
        assert opened.decode is not None
        reader = opened.reader
        image = tiling._displayable(opened.decode())
    dzsave(image)
    # VmHWM, not ru_maxrss: Linux keeps the parent's ru_maxrss across fork + exec
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    rss = int(status.split()[0]) / 1024
    return {
        "reader": reader,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mib": round(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--only", nargs="*", help="case names (all by default)")
    parser.add_argument("--readers", nargs="*", default=["slipway", "openslide"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return
    side = args.side
    folder = Path(tempfile.mkdtemp(prefix="slide-bench-"))
    makers = {
        "svs-jpeg": lambda: make_slides.make_svs("jpeg", side, side * 3 // 4),
        "svs-jpeg2000-33005": lambda: make_slides.make_svs(33005, side, side * 3 // 4),
        "tiff-jpeg2000-34712": lambda: make_slides.make_pyramidal_tiff(
            "jpeg2000", False, side, side * 3 // 4
        ),
        "ome-16bit-3ch": lambda: make_slides.make_fluorescence(True, side, side * 3 // 4),
        "boxes_0.dcm": lambda: make_slides.Slide(
            make_slides.vendor_samples()["boxes_0.dcm"].read_bytes(), np.zeros(0)
        ),
    }
    for name in args.only or makers:
        (folder / name).write_bytes(makers[name]().data)
        for reader in args.readers:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.slide_readers",
                    "--child",
                    str(folder / name),
                    reader,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            result = (
                done.stdout.strip().splitlines()[-1]
                if done.returncode == 0
                else (done.stderr.strip().splitlines()[-1])
            )
            size = (folder / name).stat().st_size
            print(f"{name:22} {size / 2**20:8.1f} MiB  {reader:10} {result}")


if __name__ == "__main__":
    main()
