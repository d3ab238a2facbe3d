"""The slide viewer in a real browser (Debian's Chromium, headless): the page loads the
pyramid, zooms in to full resolution, fetches the deepest tiles and draws them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyvips

from slipway.client import Client
from slipway_local.stack import Stack
from tests.support import CHROMIUM_FLAGS, chromium

# a headless run that prints the DOM: the page's size and time to draw its tiles
FLAGS = [
    "--headless",
    *CHROMIUM_FLAGS,
    "--hide-scrollbars",
    "--window-size=1200,800",
    "--virtual-time-budget=20000",
]


def browse(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_viewer_zooms_into_the_deepest_level_and_draws_it(
    client_for: Callable[..., Client],
    local_stack: Stack,
    tmp_path: Path,
) -> None:
    hana = client_for("hana")
    noise = pyvips.Image.gaussnoise(3000, 2000, mean=128, sigma=60)
    image = noise.bandjoin([noise.rot180(), noise.flip("horizontal")]).cast("uchar")
    upload_id = hana.upload_bytes(
        "slide", "viewer.jpg", image.copy(interpretation="srgb").jpegsave_buffer(Q=85), "image/jpeg"
    )["uploadId"]
    slide = hana.wait_until(
        lambda: hana.slide(upload_id), lambda s: s["status"] == "SUCCEEDED", timeout=120
    )
    deepest = slide["levels"] - 1
    deep_link = slide["viewerUrl"] + "#zoom=max&x=0.4&y=0.6"

    dom = browse(deep_link, tmp_path, "--dump-dom")
    match = re.search(r'data-deepest-level="(\d+)"', dom.stdout)
    assert match, f"no tile was drawn; chromium said: {dom.stderr[-800:]}"
    assert int(match.group(1)) == deepest

    log = local_stack.serve_log.read_text()
    fetched = set(re.findall(rf"/v1/slides/{upload_id}/dzi/[^/]+/slide_files/(\d+)/", log))
    assert str(deepest) in fetched, sorted(fetched, key=int)

    shot = tmp_path / "viewer.png"
    browse(deep_link, tmp_path, f"--screenshot={shot}")
    picture = pyvips.Image.new_from_file(str(shot))
    viewport = picture.crop(0, 0, picture.width, picture.height - 60)  # not the status line
    assert viewport.deviate() > 20, "the canvas shows the slide's texture, not a blank page"
