"""Fan-out (docs/tiling.md#fan-out): a slide tiled as regions plus a finish equals the
single-pass pyramid, pixel for pixel at every level (PNG tiles), seams included; through
the whole stack too (upload → tile → regions → finish → served tiles), with a region's
worker killed outright (kill -9) and its region recovered by lease."""

from __future__ import annotations

import os
import uuid
from typing import Any
from uuid import UUID

import numpy as np
import pytest
import pyvips
import tifffile

from slipway import fanout, regions, storage, tilestore, tiling
from slipway.fanout import Plan
from slipway.worker import Lease

T = 256


def lease() -> Lease:
    return Lease.detached("tile", "tester", 60)


def noisy(width: int, height: int) -> np.ndarray[Any, Any]:
    """Pixels where any misplaced or re-averaged pixel shows (not a smooth gradient)."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    _, xx = np.mgrid[0:height, 0:width]
    base[..., 0] = (base[..., 0] // 2 + (xx % 256) // 2).astype(np.uint8)
    return base


def libvips_tiff(pixels: np.ndarray[Any, Any]) -> bytes:
    """A tiled, lossless 8-bit RGB TIFF: level 0 read by libvips (random access)."""
    image = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb")
    data: bytes = image.tiffsave_buffer(
        tile=True, tile_width=256, tile_height=256, compression="deflate", pyramid=True
    )
    return data


def tifffile_tiff(pixels: np.ndarray[Any, Any]) -> bytes:
    """A tiled 16-bit RGB TIFF with 240-row tiles (not aligned to the regions): read by
    tifffile + imagecodecs (LevelReader.window)."""
    import io

    out = io.BytesIO()
    deep = pixels.astype(np.uint16) * 257
    tifffile.imwrite(out, deep, tile=(240, 208), compression="zlib", photometric="rgb")
    return out.getvalue()


def stored(data: bytes) -> tuple[str, str]:
    key = f"test-sources/{uuid.uuid4()}"
    storage.put_bytes(os.environ["SLIPWAY_DATA_BUCKET"], key, data, "application/octet-stream")
    return os.environ["SLIPWAY_DATA_BUCKET"], key


def pyramid(prefix: str) -> dict[str, np.ndarray[Any, Any]]:
    """Every tile a slide's index lists (regions' too), decoded."""
    bucket = os.environ["SLIPWAY_TILES_BUCKET"]
    top = tilestore._index(bucket, prefix)
    names = set(top["tiles"])
    for region in top.get("regions", []):
        names |= set(tilestore.read_index(bucket, region["index"])["tiles"])
    tiles = {}
    for name in names:
        level, tile = name.split("/")
        data = tilestore.read_archived_tile(bucket, prefix, int(level), tile)
        assert data is not None, name
        tiles[name] = pyvips.Image.new_from_buffer(data, "").numpy()
    return tiles


def fan_out(
    source: tuple[str, str], size: int, layout: Plan, options: tiling.TileOptions
) -> tuple[dict[str, Any], str]:
    """The regions, then the finish, as the jobs run them (here in one process)."""
    bucket, key = source
    out = os.environ["SLIPWAY_TILES_BUCKET"]
    results = []
    for region in layout.regions:
        prefix = f"test-slides/{uuid.uuid4()}/"
        results.append(
            regions.tile_region(bucket, key, size, out, prefix, lease(), options, layout, region)
        )
    prefix = f"test-slides/{uuid.uuid4()}/"
    result = regions.tile_finish(bucket, key, size, out, prefix, lease(), options, layout, results)
    return result, prefix


@pytest.mark.parametrize("reader", ["libvips", "tifffile"])
def test_regions_and_finish_equal_a_single_pass_at_every_level(reader: str) -> None:
    width, height = 3000, 2200
    pixels = noisy(width, height)
    data = libvips_tiff(pixels) if reader == "libvips" else tifffile_tiff(pixels)
    source = stored(data)
    options = tiling.TileOptions(format="png")
    bucket, key = source
    out = os.environ["SLIPWAY_TILES_BUCKET"]
    single_prefix = f"test-slides/{uuid.uuid4()}/"
    single = tiling.tile(bucket, key, len(data), out, single_prefix, lease(), options)

    layout = fanout.plan(width, height, T, 2_000_000, depth=2)
    assert len(layout.regions) == 4 and layout.block == 1024
    # seams on both axes, and an edge region of odd size
    assert {r.x for r in layout.regions} == {0, 1024}
    assert {r.y for r in layout.regions} == {0, 1024}
    result, prefix = fan_out(source, len(data), layout, options)

    assert {k: v for k, v in result.items() if k != "tilesPrefix"} == {
        k: v for k, v in single.items() if k != "tilesPrefix"
    }
    expected, got = pyramid(single_prefix), pyramid(prefix)
    assert set(got) == set(expected)
    assert len(got) == single["tileCount"]
    levels = {int(name.split("/")[0]) for name in got}
    assert levels == set(range(single["levels"]))
    unequal = [n for n in expected if not np.array_equal(expected[n], got[n])]
    assert unequal == [], f"{len(unequal)} tiles differ, e.g. {sorted(unequal)[:5]}"
    # the seams explicitly: at full size the tiles on both sides of x = 1024 and y = 1024
    top = single["levels"] - 1
    for name in (f"{top}/3_0", f"{top}/4_0", f"{top}/0_3", f"{top}/0_4", f"{top}/4_4"):
        assert np.array_equal(got[f"{name}.png"], expected[f"{name}.png"])
    # and the first level above the regions' (stitched from four regions' tiles)
    assert np.array_equal(got[f"{top - 3}/0_0.png"], expected[f"{top - 3}/0_0.png"])
    descriptor = storage.read_bytes(out, tilestore.dzi_key(prefix))
    assert descriptor == storage.read_bytes(out, tilestore.dzi_key(single_prefix))
    # the full-size pixels are the source's
    assert np.array_equal(got[f"{top}/0_0.png"][..., :3], pixels[:256, :256])


# through the whole stack: upload → verify → tile job → regions → finish ---------------

OWNER = "fanout-lab"
WORKER_LEASE_SECONDS = 2


def stack_slide(width: int = 5000, height: int = 4200) -> tuple[bytes, np.ndarray[Any, Any]]:
    """A tiled JPEG TIFF over the stack's fan-out threshold (TUNING: 20 Mpx), a few MB
    (under the multipart threshold: one PUT)."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx % 256, yy % 256, (xx // 7 + yy // 5) % 256], axis=-1).astype(np.uint8)
    image = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb")
    data: bytes = image.tiffsave_buffer(tile=True, compression="jpeg", Q=90, pyramid=True)
    assert len(data) < 8 * 2**20, len(data)
    return data, pixels


def children(conn: Any, parent: Any) -> list[dict[str, Any]]:
    return list(
        conn.execute(
            "SELECT id, type, status, attempt_count, result, last_error_code FROM jobs"
            " WHERE parent_id = %s ORDER BY created_at, (payload->>'region')::int",
            (parent,),
        )
    )


def served_tiles(conn: Any, upload_id: str) -> dict[str, bytes]:
    """Every tile of the slide as the API reads them (the slide row's prefix)."""
    row = conn.execute(
        "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
    ).fetchone()
    bucket, prefix = os.environ["SLIPWAY_TILES_BUCKET"], row["tiles_prefix"]
    top = tilestore._index(bucket, prefix)
    names = set(top["tiles"])
    for region in top.get("regions", []):
        names |= set(tilestore.read_index(bucket, region["index"])["tiles"])
    out = {}
    for name in names:
        level, tile = name.split("/")
        data = tilestore.read_archived_tile(bucket, prefix, int(level), tile)
        assert data is not None
        out[name] = data
    return out


def test_a_slide_over_the_threshold_tiles_through_regions_end_to_end(
    client_for: Any, conn: Any
) -> None:
    from slipway.projections import replay

    lab = client_for(OWNER)
    data, pixels = stack_slide()
    upload_id = lab.upload_bytes("slide", "big.tiff", data)["uploadId"]
    slide = lab.wait_until(
        lambda: lab.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=600,
    )
    assert slide["status"] == "SUCCEEDED", slide["error"]
    job = lab.job(slide["jobId"])
    assert job["type"] == "tile" and job["status"] == "SUCCEEDED"
    assert job["progress"] == {"regionsDone": 4, "regions": 4}
    kids = children(conn, UUID(slide["jobId"]))
    assert [k["type"] for k in kids] == ["tile_region"] * 4 + ["tile_finish"]
    assert all(k["status"] == "SUCCEEDED" for k in kids)
    listed = lab.call("GET", "/v1/jobs", uploadId=upload_id)
    assert [j["jobId"] for j in listed["jobs"]] == [slide["jobId"]], "children are not listed"

    # the same pyramid as a single pass of the same file, in this process
    bucket, key = stored(data)
    single_prefix = f"test-slides/{uuid.uuid4()}/"
    out = os.environ["SLIPWAY_TILES_BUCKET"]
    single = tiling.tile(bucket, key, len(data), out, single_prefix, lease(), tiling.TileOptions())
    assert (slide["width"], slide["height"], slide["levels"]) == (5000, 4200, 14)
    assert slide["tileCount"] == single["tileCount"]
    got = served_tiles(conn, upload_id)
    expected = {
        name: tilestore.read_archived_tile(
            out, single_prefix, int(name.split("/")[0]), name.split("/")[1]
        )
        for name in tilestore._index(out, single_prefix)["tiles"]
    }
    assert set(got) == set(expected)
    top, depth = slide["levels"] - 1, 2
    for name, tile in expected.items():
        level = int(name.split("/")[0])
        if level >= top - depth:  # the regions' levels: the same JPEG bytes
            assert got[name] == tile, name
        else:  # stitched from decoded JPEG tiles: one more JPEG generation
            a = pyvips.Image.new_from_buffer(got[name], "").numpy().astype(int)
            b = pyvips.Image.new_from_buffer(tile, "").numpy().astype(int)
            assert a.shape == b.shape and np.abs(a - b).mean() < 3.0, name
    # served over HTTP as any slide: the descriptor and a tile of each kind of level
    base = slide["dziUrl"].removesuffix(".dzi")
    import requests

    dzi = requests.get(slide["dziUrl"], timeout=30)
    assert dzi.status_code == 200 and b'Width="5000"' in dzi.content
    for name in (f"{top}/4_3", f"{top}/19_16", f"{top - depth}/1_1", "0/0_0"):
        reply = requests.get(f"{base}_files/{name}.jpeg", timeout=30)
        assert reply.status_code == 200 and reply.content == got[f"{name}.jpeg"]
    tile = pyvips.Image.new_from_buffer(got[f"{top}/0_0.jpeg"], "").numpy().astype(int)
    assert np.abs(tile - pixels[:256, :256]).mean() < 8.0
    _, differences = replay.differences(conn)
    assert differences == [], "replay reproduces the tables, fan-out columns included"


def waiting_parent(conn: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, UUID]:
    """A verified slide whose tile job fanned out in this process: WAITING, its regions
    queued and signalled to no worker (the stack's sweeper re-signals only after a
    minute)."""
    import hashlib

    import requests

    from slipway import jobs, uploads, worker

    data, _ = stack_slide()
    sha256 = hashlib.sha256(data).hexdigest()
    created = uploads.create(
        OWNER, uploads.NewUpload("slide", "big.tiff", len(data), sha256=sha256)
    )
    conn.execute(  # the stack's verifier backs off: this process verifies, unsignalled
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, 'fanout-test', now() + interval '10 minutes')",
        (created["uploadId"],),
    )
    reply = requests.put(created["url"], data=data, headers=created["headers"], timeout=60)
    assert reply.status_code == 200, reply.text
    with monkeypatch.context() as patch:
        patch.setattr(uploads, "_holder", lambda: "fanout-test")
        patch.setattr(jobs, "signal", lambda types, **_: None)
        upload = uploads.verify(UUID(created["uploadId"]), "test")
        assert upload is not None and upload.state == "ready"
        parent = wait_for_claim(jobs, "tile", upload.id)
        assert worker.run_one(parent, tiling.run_job, "fanout-planner") == "SUCCEEDED"
    assert jobs.get(parent.id).status == "WAITING"
    assert jobs.get(parent.id).to_api()["status"] == "RUNNING"
    return created["uploadId"], parent.id


def wait_for_claim(jobs: Any, job_type: str, upload_id: UUID) -> Any:
    job = jobs.claim(job_type, "fanout-planner")
    assert job is not None and job.upload_id == upload_id, "the test's own job"
    return job


def die_in_region() -> None:
    """Run in a child process: claim a region, tile it, SIGKILL ourselves once its tiles
    are written (lease held, no index, no success)."""
    import signal as signals

    from slipway import config, jobs, worker

    os.environ["SLIPWAY_JOB_LEASE_SECONDS"] = str(WORKER_LEASE_SECONDS)
    config.settings.cache_clear()
    tilestore.Writer.finish = lambda *a, **k: os.kill(os.getpid(), signals.SIGKILL)  # type: ignore[method-assign]
    job = jobs.claim("tile_region", "fault-worker")
    if job is None:
        raise SystemExit("no region to claim")
    print(job.id, flush=True)
    worker.run_one(job, regions.run_region, "fault-worker")
    raise SystemExit("the region finished without reaching Writer.finish")


def test_a_region_worker_killed_outright_is_recovered_by_its_lease(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal as signals
    import time

    from slipway import jobs, sweeper
    from tests.integration.conftest import library_settings
    from tests.support import run_in_child, wait_for

    upload_id, parent = waiting_parent(conn, monkeypatch)
    child = run_in_child("tests.integration.test_tile_fanout.die_in_region")
    assert child.returncode == -signals.SIGKILL, child.stderr[-2000:]
    killed = UUID(child.stdout.split()[0])
    assert jobs.get(killed).status == "RUNNING", "killed holding the lease"
    time.sleep(WORKER_LEASE_SECONDS + 0.5)
    with library_settings(SLIPWAY_NOTIFICATION_GRACE_SECONDS="0"):
        sweeper.run()  # the regions' type is signalled: the stack's tile worker takes them

    def ended() -> jobs.Job | None:
        job = jobs.get(parent)
        return job if job.status in ("SUCCEEDED", "FAILED", "CANCELLED") else None

    done = wait_for(ended, timeout=600, what="the fanned-out slide to finish")
    assert done.status == "SUCCEEDED", done.error
    kids = {k["id"]: k for k in children(conn, parent)}
    assert kids[killed]["attempt_count"] == 2, "the killed region ran again, alone"
    assert all(k["attempt_count"] == 1 for i, k in kids.items() if i != killed)
    served = {k["result"]["tilesPrefix"] for k in kids.values() if k["type"] == "tile_region"}
    row = conn.execute(
        "SELECT tiles_prefix FROM slides WHERE upload_id = %s", (upload_id,)
    ).fetchone()
    served.add(row["tiles_prefix"])
    bucket = os.environ["SLIPWAY_TILES_BUCKET"]
    keys = [k for k, _, _ in storage.list_keys(bucket, storage.slide_prefix(UUID(upload_id)))]
    stray = [k for k in keys if not any(k.startswith(p) for p in served)]
    assert stray == [], "the killed attempt's writes are gone"
    assert len(served_tiles(conn, upload_id)) > 0


def test_cancelling_a_fanned_out_slide_cancels_its_regions(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway import jobs, slides

    upload_id, parent = waiting_parent(conn, monkeypatch)
    running = jobs.claim("tile_region", "region-holder")  # one region RUNNING, not stopped
    assert running is not None
    cancelled = jobs.cancel(parent, OWNER)
    assert cancelled.status == "CANCELLED"
    kids = {k["id"]: k for k in children(conn, parent)}
    assert {k["status"] for i, k in kids.items() if i != running.id} == {"CANCELLED"}
    assert jobs.get(running.id).cancel_requested_at is not None, "the running one is asked"
    view = slides.view(UUID(upload_id), OWNER, "http://x")
    assert view["status"] == "FAILED" and view["error"]["code"] == "CANCELLED"
    # the running region stops at its start (its parent no longer waits): CANCELLED
    from slipway import worker

    assert worker.run_one(running, regions.run_region, "region-holder") == "CANCELLED"


def test_a_region_that_cannot_be_decoded_fails_the_slide_with_its_code(
    client_for: Any, conn: Any
) -> None:
    import io

    from tests.support import wait_for

    data, _ = stack_slide()
    tif = tifffile.TiffFile(io.BytesIO(data))
    page = tif.pages.first
    across = -(-page.imagewidth // page.tilewidth)
    index = 3840 // page.tilelength * across + 4608 // page.tilewidth  # region 3's
    offset, length = page.dataoffsets[index], page.databytecounts[index]
    tif.close()
    broken = data[:offset] + b"\x00" * length + data[offset + length :]
    lab = client_for(OWNER)
    upload_id = lab.upload_bytes("slide", "broken.tiff", broken)["uploadId"]
    slide = lab.wait_until(
        lambda: lab.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=600,
    )
    assert slide["status"] == "FAILED"
    assert slide["error"]["code"] == "IMAGE_UNREADABLE"
    assert slide["error"]["message"].startswith("region 3:")

    def settled() -> list[dict[str, Any]] | None:
        kids = children(conn, UUID(slide["jobId"]))
        return kids if all(k["status"] not in ("QUEUED", "RUNNING") for k in kids) else None

    kids = wait_for(settled, timeout=300, what="the other regions to end")
    assert [k["last_error_code"] for k in kids if k["status"] == "FAILED"] == ["IMAGE_UNREADABLE"]
    assert not any(k["type"] == "tile_finish" for k in kids)
