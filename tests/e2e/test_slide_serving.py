"""Serving a tiled slide to labs (issue 10): `source`, the associated images and the IIIF
Image API 3.0 service over the DZI pyramid, through the gateway, plus the viewer page in
headless Chromium.

The slides are tiled by the stack's tile job first; then each test's pyramid is made
in-process with the tile options it needs (256 px, overlap 0: IIIF tiles are DZI tiles)
and recorded as the tile job records it, with the `source` and `associated` the tile job
writes (docs/serving.md), so these tests do not depend on the stack's default options.
The last test takes an SVS through the stack's own tile job, without retiling."""

from __future__ import annotations

import math
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyvips
import requests

from slipway import auth, db, storage, tiling, uploads
from slipway.client import ApiError, Client
from slipway.config import settings
from slipway.events import NewEvent
from slipway.projections import record
from slipway.worker import Lease
from slipway_local.stack import Stack
from tests.e2e.test_viewer import browse
from tests.fixtures.slides import make_slides
from tests.support import ROOT

WIDTH, HEIGHT = 1100, 700  # not multiples of 256: the last column and row are partial
SOURCE = {
    "format": "aperio-svs",
    "vendor": "aperio",
    "width": WIDTH,
    "height": HEIGHT,
    "levels": 1,
    "mppX": 0.2527,
    "mppY": 0.2527,
    "objectivePower": 40.0,
    "channels": [{"name": None, "bitsPerSample": 8}],
    "compression": "jpeg",
}
SCREENSHOTS = ROOT / ".slipway" / "screenshots"


def texture() -> pyvips.Image:
    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, mean=128, sigma=50)
    return noise.bandjoin([noise.rot180(), noise.flip("vertical")]).cast("uchar")


def label_png() -> bytes:
    text = pyvips.Image.text("CASE 17 · PATIENT NAME", dpi=150).gravity("centre", 420, 160)
    return bytes((255 - text).copy(interpretation="b-w").pngsave_buffer())


def thumbnail_jpeg() -> bytes:
    return bytes(texture().thumbnail_image(200).copy(interpretation="srgb").jpegsave_buffer())


def retile(
    upload_id: str, options: tiling.TileOptions, associated: dict[str, tuple[bytes, str]]
) -> None:
    """Tile the slide's stored file again with `options` and record it as the tile job does,
    with the associated images stored under the attempt's prefix (slides-common.md)."""
    s = settings()
    upload = uploads.load(uuid.UUID(upload_id))
    prefix = f"{storage.slide_prefix(upload.id)}retile-{uuid.uuid4()}/"
    lease = Lease.detached("tile", "tester", 120)
    result = tiling.tile(
        s.data_bucket, upload.blob_key, upload.size, s.tiles_bucket, prefix, lease, options
    )
    stored = {}
    for name, (data, media_type) in associated.items():
        key = f"{prefix}associated/{name}.{'png' if media_type == 'image/png' else 'jpg'}"
        storage.put_bytes(s.tiles_bucket, key, data, media_type)
        stored[name] = {"key": key, "mediaType": media_type}
    with db.connect() as conn:
        job_id = conn.execute(
            "SELECT job_id FROM slides WHERE upload_id = %s", (upload.id,)
        ).fetchone()
    assert job_id is not None
    payload = {"jobId": str(job_id["job_id"]), **result, "source": SOURCE, "associated": stored}
    with db.transaction() as conn:
        record(conn, "tester", NewEvent("v1.slide.tiled", "slide", upload.id, payload))


@pytest.fixture(scope="module")
def served(client_for: Callable[..., Client]) -> dict[str, Any]:
    """A slide tiled 256/0 with a label and a thumbnail (no macro); its API view."""
    hana = client_for("hana")
    image = texture().copy(interpretation="srgb").jpegsave_buffer(Q=90)
    upload_id = hana.upload_bytes("slide", "CASE-17 <b>&amp;.jpg", image, "image/jpeg")["uploadId"]
    hana.wait_until(lambda: hana.slide(upload_id), lambda s: s["status"] == "SUCCEEDED", 120)
    associated = {
        "label": (label_png(), "image/png"),
        "thumbnail": (thumbnail_jpeg(), "image/jpeg"),
    }
    retile(upload_id, tiling.TileOptions(tile_size=256, overlap=0), associated)
    return {"view": hana.slide(upload_id), "associated": associated}


def get(url: str, **kwargs: Any) -> requests.Response:
    """A request as a lab's viewer makes it: no bearer token, no cookies."""
    return requests.get(url, timeout=30, **kwargs)


def test_the_slide_view_has_source_associated_images_and_a_iiif_url(
    served: dict[str, Any],
) -> None:
    view = served["view"]
    token = re.search(r"/dzi/([^/]+)/", view["dziUrl"])
    assert token
    assert view["source"] == SOURCE
    assert view["tileSize"] == 256 and view["overlap"] == 0
    assert view["iiifUrl"] == view["dziUrl"].split("/dzi/")[0] + f"/iiif/{token[1]}"
    assert set(view["associated"]) == {"label", "thumbnail"}  # the file holds no macro
    for url in view["associated"].values():
        assert "/associated/" in url and token[1] not in url  # a capability of its own


def test_info_json_is_a_valid_iiif_image_api_3_document(served: dict[str, Any]) -> None:
    service = served["view"]["iiifUrl"]
    reply = get(f"{service}/info.json", headers={"Origin": "https://viewer.example"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"  # viewers on other sites
    info = reply.json()
    # Image API 3.0 §5: the required properties, with these exact values
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"
    assert info["id"] == service
    assert info["type"] == "ImageService3"
    assert info["protocol"] == "http://iiif.io/api/image"
    assert info["profile"] == "level0"
    assert (info["width"], info["height"]) == (WIDTH, HEIGHT)
    levels = math.ceil(math.log2(WIDTH)) + 1
    assert info["tiles"] == [
        {"type": "Tile", "width": 256, "height": 256, "scaleFactors": [2**k for k in range(levels)]}
    ]
    sizes = [(s["width"], s["height"]) for s in info["sizes"]]
    assert sizes == sorted(sizes) and sizes[-1] == (138, 88)  # 1100/8, 700/8 rounded up
    assert all(s["type"] == "Size" for s in info["sizes"])
    # §2.2: the base URI redirects to info.json
    base = get(service, allow_redirects=False)
    assert base.status_code == 303 and base.headers["Location"] == f"{service}/info.json"


def listed_requests(info: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(scale factor, region, size) of every tile info.json lists, computed the way the
    spec's §A (tiles) says a client does, independently of the server's code."""
    out = []
    width, height = info["width"], info["height"]
    for tiles in info["tiles"]:
        size = tiles["width"]
        for s in tiles["scaleFactors"]:
            span = size * s
            for y in range(0, height, span):
                for x in range(0, width, span):
                    w, h = min(span, width - x), min(span, height - y)
                    region = "full" if (w, h) == (width, height) else f"{x},{y},{w},{h}"
                    size_text = f"{math.ceil(w / s)},{math.ceil(h / s)}"
                    out.append((s, region, "max" if s == 1 and region == "full" else size_text))
    return out


def test_every_listed_tile_is_the_dzi_tile_with_those_pixels(served: dict[str, Any]) -> None:
    view = served["view"]
    service = view["iiifUrl"]
    info = get(f"{service}/info.json").json()
    files = view["dziUrl"].removesuffix(".dzi") + "_files"
    requests_listed = listed_requests(info)
    assert len(requests_listed) == 5 * 3 + 3 * 2 + 2 * 1 + 9  # levels 11, 10, 9, then 1 each
    for s, region, size in requests_listed:
        reply = get(f"{service}/{region}/{size}/0/default.jpg")
        assert reply.status_code == 200, (region, size, reply.text)
        assert reply.headers["Content-Type"] == "image/jpeg"
        level = view["levels"] - 1 - int(math.log2(s))
        x, y = (0, 0) if region == "full" else map(int, region.split(",")[:2])
        col, row = x // (256 * s), y // (256 * s)
        assert reply.content == get(f"{files}/{level}/{col}_{row}.jpeg").content
        picture = pyvips.Image.new_from_buffer(reply.content, "")
        if size != "max":
            assert f"{picture.width},{picture.height}" == size
    for entry in info["sizes"]:  # the `sizes`: the whole image, one tile each
        size = f"{entry['width']},{entry['height']}"
        assert get(f"{service}/full/{size}/0/default.jpg").status_code == 200, size
    # "w," is the same request as "w,h" (the height follows from the aspect ratio), and
    # a percent-encoded comma the same as a comma
    first = get(f"{service}/0,0,256,256/256,256/0/default.jpg").content
    assert get(f"{service}/0,0,256,256/256,/0/default.jpg").content == first
    assert get(f"{service}/0%2C0%2c256%2C256/256%2C256/0/default.jpg").content == first


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("0,0,256,256/256,256/90/default.jpg", 400),  # rotation: level 0 has 0 only
        ("0,0,256,256/256,256/0/gray.jpg", 400),  # quality
        ("0,0,256,256/256,256/0/default.png", 400),  # format
        ("square/256,256/0/default.jpg", 400),  # region syntax beyond level 0
        ("0,0,256,256/pct:50/0/default.jpg", 400),  # size syntax beyond level 0
        ("0,0,256,256/!256,256/0/default.jpg", 400),
        ("1,0,256,256/256,256/0/default.jpg", 404),  # not on the tile grid
        ("0,0,256,256/128,128/0/default.jpg", 404),  # a size no tile has
        ("0,0,300,256/300,256/0/default.jpg", 404),  # not a tile's width
        ("1024,0,76,256/76,256/0/default.jpg", 200),  # the last, partial column: listed
        ("1280,0,256,256/256,256/0/default.jpg", 404),  # beyond the image
        ("full/max/0/default.jpg", 404),  # the whole 1100 px image is no single tile
    ],
)
def test_requests_beyond_the_listed_tiles_are_refused(
    served: dict[str, Any], path: str, status: int
) -> None:
    reply = get(f"{served['view']['iiifUrl']}/{path}")
    assert reply.status_code == status, reply.text
    if status != 200:
        assert reply.json()["error"]["code"] == ("BAD_REQUEST" if status == 400 else "NOT_FOUND")


def test_iiif_and_associated_links_are_capabilities_of_this_slide(
    served: dict[str, Any], client_for: Callable[..., Client]
) -> None:
    view = served["view"]
    slide = view["uploadId"]
    root = view["iiifUrl"].split("/iiif/")[0]
    other = auth.capability(str(uuid.uuid4()), 600)  # another slide's (another owner's) link
    assert get(f"{root}/iiif/{other}/info.json").status_code == 404
    assert get(f"{root}/iiif/{other}/0,0,256,256/256,256/0/default.jpg").status_code == 404
    expired = auth.capability(slide, -60)
    assert get(f"{root}/iiif/{expired}/info.json").status_code == 403
    # the tile links (which labs paste into other viewers) do not open the label
    dzi_token = view["iiifUrl"].rsplit("/", 1)[1]
    assert get(f"{root}/associated/{dzi_token}/label").status_code == 404
    other_associated = auth.capability(f"{uuid.uuid4()}/associated", 600)
    assert get(f"{root}/associated/{other_associated}/label").status_code == 404
    # and another owner does not get the links at all
    ghost = client_for("ghost")
    with pytest.raises(ApiError) as refused:
        ghost.slide(slide)
    assert refused.value.status == 404


def test_associated_images_are_the_stored_objects_with_their_media_types(
    served: dict[str, Any],
) -> None:
    urls = served["view"]["associated"]
    for name, (data, media_type) in served["associated"].items():
        reply = get(urls[name])
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"] == media_type
        assert reply.content == data
    macro = urls["label"].rsplit("/", 1)[0] + "/macro"
    assert get(macro).status_code == 404  # the file holds none
    assert get(urls["label"].rsplit("/", 1)[0] + "/other").status_code in (400, 404)


def test_a_pyramid_with_overlap_has_no_iiif_service(
    client_for: Callable[..., Client],
) -> None:
    hana = client_for("hana")
    image = texture().copy(interpretation="srgb").jpegsave_buffer(Q=80)
    upload_id = hana.upload_bytes("slide", "overlap.jpg", image, "image/jpeg")["uploadId"]
    hana.wait_until(lambda: hana.slide(upload_id), lambda s: s["status"] == "SUCCEEDED", 120)
    retile(upload_id, tiling.TileOptions(tile_size=256, overlap=0), {})
    service = hana.slide(upload_id)["iiifUrl"]
    assert get(f"{service}/info.json").status_code == 200
    retile(upload_id, tiling.TileOptions(tile_size=254, overlap=1), {})
    view = hana.slide(upload_id)
    assert view["overlap"] == 1 and view["iiifUrl"] is None and view["associated"] == {}
    assert get(f"{service}/info.json").status_code == 404  # the old link finds nothing


def statuses(log: str, upload_id: str, route: str) -> list[str]:
    """The HTTP statuses the gateway answered to requests of this slide's `route`."""
    return re.findall(rf'"GET /v1/slides/{upload_id}/{route}/[^"]* HTTP/1.1" (\d+)', log)


def browse_logged(stack: Stack, url: str, tmp: Path, *extra: str) -> tuple[str, str]:
    """The page's DOM after it settled, and the gateway's log of what it fetched."""
    start = stack.serve_log.stat().st_size
    dom = browse(url, tmp, *extra, "--dump-dom").stdout
    with stack.serve_log.open() as log:
        log.seek(start)
        return dom, log.read()


def test_openseadragon_opens_the_iiif_service_and_every_tile_loads(
    served: dict[str, Any], local_stack: Stack, tmp_path: Path
) -> None:
    view = served["view"]
    url = view["viewerUrl"] + "#tiles=iiif&zoom=max&x=0.9&y=0.9"
    dom, log = browse_logged(local_stack, url, tmp_path)
    assert 'data-tiles="iiif"' in dom, dom[-2000:]
    assert "data-failed-tiles" not in dom  # OpenSeadragon failed no tile
    loaded = re.search(r'data-loaded-tiles="(\d+)"', dom)
    deepest = re.search(r'data-deepest-level="(\d+)"', dom)
    assert loaded and int(loaded[1]) > 0 and deepest and int(deepest[1]) == view["levels"] - 1
    fetched = statuses(log, view["uploadId"], "iiif")
    assert fetched and set(fetched) == {"200"}, fetched  # info.json and tiles, none refused


def test_the_viewer_shows_the_facts_a_scale_bar_and_the_associated_images(
    served: dict[str, Any], local_stack: Stack, tmp_path: Path
) -> None:
    view = served["view"]
    dom, log = browse_logged(local_stack, view["viewerUrl"] + "#zoom=max", tmp_path)
    assert "CASE-17 &lt;b&gt;&amp;amp;.jpg</h1>" in dom  # the filename, as text, not markup
    for shown in ("aperio", "aperio-svs", "1100 × 700 px", "0.2527 µm/px", "40×"):
        assert f"<dd>{shown}</dd>" in dom, shown
    bar = re.search(r'id="scalebar" data-microns="([\d.]+)"', dom)
    assert bar, "the scale bar is drawn from mppX"
    # at full zoom (2 screen px per image px) ~150 px are ~19 µm: the bar shows 10 µm
    assert float(bar[1]) == 10
    assert 'id="associated-label"' in dom and 'id="associated-thumbnail"' in dom
    assert "associated-macro" not in dom
    assert statuses(log, view["uploadId"], "associated") == ["200", "200"]  # the <img>s

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / "viewer.png"
    browse(view["viewerUrl"], tmp_path, f"--screenshot={shot}")
    shutil.copy(shot, SCREENSHOTS / "viewer-facts.png")
    picture = pyvips.Image.new_from_file(str(shot))
    assert (picture.width, picture.height) == (1200, 800)
    corner = picture.crop(1040, 760, 150, 30)  # the scale bar's box (white on dark)
    assert corner.max() > 200, "the scale bar is drawn"


def test_an_svs_tiled_by_the_stack_is_served_with_its_label_macro_and_thumbnail(
    client_for: Callable[..., Client], local_stack: Stack, tmp_path: Path
) -> None:
    """No retiling here: the stack's own tile job reads the file (the readers' work), and
    what it recorded is what the API serves."""
    svs = make_slides.make_svs()
    hana = client_for("hana")
    upload_id = hana.upload_bytes("slide", "case.svs", svs.data, "image/tiff")["uploadId"]
    view = hana.wait_until(
        lambda: hana.slide(upload_id), lambda s: s["status"] in ("SUCCEEDED", "FAILED"), 120
    )
    assert view["status"] == "SUCCEEDED", view["error"]
    assert view["source"]["format"] == "aperio-svs"
    assert view["source"]["mppX"] == pytest.approx(make_slides.SVS_MPP)
    assert set(view["associated"]) == {"label", "macro", "thumbnail"}
    for name, url in view["associated"].items():
        reply = get(url)
        assert reply.status_code == 200 and reply.headers["Content-Type"] in (
            "image/jpeg",
            "image/png",
        ), (name, reply.status_code)
        picture = pyvips.Image.new_from_buffer(reply.content, "")
        expected = svs.extra[name]
        assert (picture.height, picture.width) == expected.shape[:2], name
    info = get(f"{view['iiifUrl']}/info.json").json()
    assert (info["width"], info["height"]) == (svs.expected.shape[1], svs.expected.shape[0])
    dom, log = browse_logged(local_stack, view["viewerUrl"] + "#tiles=iiif", tmp_path)
    assert 'data-tiles="iiif"' in dom and "data-failed-tiles" not in dom
    assert re.search(r'id="scalebar" data-microns=', dom)
    assert set(statuses(log, upload_id, "iiif")) == {"200"}
    assert statuses(log, upload_id, "associated") == ["200"] * 3
