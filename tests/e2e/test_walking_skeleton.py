"""The walking skeleton, as a client sees it: presign → PUT → notification → verify →
tile / parse → events. Only HTTP, the contract (API.md) and the stack's env file."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pyvips
import requests
from defusedxml import ElementTree

from slipway.client import Client
from tests.support import FIXTURES

TELEMETRY = FIXTURES / "telemetry"
DZ = "{http://schemas.microsoft.com/deepzoom/2008}"


def slide_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    x = pyvips.Image.xyz(width, height)
    image = (x[0] % 256).bandjoin([x[1] % 256, (x[0] // 16 + x[1] // 16) % 256])
    data: bytes = image.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=85)
    return data


def test_a_slide_goes_from_upload_to_a_readable_deep_zoom_pyramid(
    client_for: Callable[..., Client],
) -> None:
    alice = client_for("alice")
    data = slide_jpeg()
    created = alice.create_upload("slide", "slide.jpg", len(data), content_type="image/jpeg")
    assert created["state"] == "pending" and created["method"] == "PUT"
    assert "slide.jpg" not in created["url"], "the object key never holds the filename"
    assert created["headers"]["Content-Type"] == "image/jpeg"
    assert (
        requests.put(created["url"], data=data, headers=created["headers"], timeout=60).status_code
        == 200
    )
    upload_id = created["uploadId"]

    slide = alice.wait_until(
        lambda: alice.slide(upload_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=180,
    )
    assert slide["status"] == "SUCCEEDED", slide
    assert (slide["width"], slide["height"], slide["levels"]) == (4000, 3000, 13)
    upload = alice.upload(upload_id)
    assert upload["state"] == "ready"
    assert re.fullmatch(r"[0-9a-f]{64}", upload["sha256"]) and re.fullmatch(
        r"[0-9a-f]{64}", upload["blake3"]
    )
    job = alice.job(upload["jobs"][0]["jobId"])
    assert job["type"] == "tile" and job["status"] == "SUCCEEDED"
    assert job["attemptCount"] == 1 and job["finishedAt"] >= job["startedAt"]

    dzi = requests.get(slide["dziUrl"], timeout=30)  # a plain client, no token
    assert dzi.status_code == 200
    root = ElementTree.fromstring(dzi.content)
    size = root.find(f"{DZ}Size")
    assert root.tag == f"{DZ}Image" and size is not None
    assert (size.get("Width"), size.get("Height")) == ("4000", "3000")
    assert root.get("TileSize") == "256" and root.get("Format") == "jpeg"
    base = slide["dziUrl"].removesuffix(".dzi") + "_files"
    for level, col, row in [(12, 0, 0), (12, 15, 11), (8, 0, 0), (0, 0, 0)]:
        tile = requests.get(f"{base}/{level}/{col}_{row}.jpeg", timeout=30)
        assert tile.status_code == 200, (level, col, row)
        decoded = pyvips.Image.new_from_buffer(tile.content, "")
        assert decoded.bands == 3 and decoded.width <= 256
    assert requests.get(f"{base}/12/99_99.jpeg", timeout=30).status_code == 404
    viewer = requests.get(slide["viewerUrl"], timeout=30)
    assert viewer.status_code == 200 and "openseadragon" in viewer.text.lower()


def test_telemetry_becomes_a_session_with_parquet_and_bad_files_fail_with_a_code(
    client_for: Callable[..., Client],
) -> None:
    bob = client_for("bob")
    good = bob.upload_bytes(
        "telemetry", "ride.csv", (TELEMETRY / "sample_gnss_10hz.csv").read_bytes(), "text/csv"
    )
    bad = bob.upload_bytes(
        "telemetry", "no-time.csv", (TELEMETRY / "csv_no_time.csv").read_bytes(), "text/csv"
    )
    sessions = {}
    for name, created in (("good", good), ("bad", bad)):
        assert bob.wait_for_upload(created["uploadId"])["state"] == "ready"
        first = bob.finalise(created["uploadId"])
        again = bob.finalise(created["uploadId"])
        assert first == again, "finalise is idempotent"
        sessions[name] = bob.wait_until(
            lambda s=first["sessionId"]: bob.session_of(s),  # type: ignore[misc]
            lambda s: s["status"] != "processing",
            timeout=120,
        )
    ok = sessions["good"]
    assert ok["status"] == "ready" and "failure" not in ok
    assert (ok["startTimeUtc"], ok["endTimeUtc"]) == (
        "2026-05-01T09:30:00Z",
        "2026-05-01T09:30:59.900000Z",
    )
    (stream,) = ok["streams"]
    assert stream["name"] == "gnss_pvt" and stream["rows"] == 600
    table = pq.read_table(io.BytesIO(requests.get(stream["parquetUrl"], timeout=30).content))
    assert table.num_rows == 600
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.names == ["time", "lat", "lon", "alt", "speed", "geometry"]

    failed = sessions["bad"]
    assert failed["status"] == "failed" and failed["streams"] == []
    assert failed["failure"]["code"] == "CSV_NO_TIME_COLUMN" and failed["failure"]["message"]

    listed = bob.call("GET", "/v1/telemetry/sessions", limit=1)
    assert len(listed["sessions"]) == 1 and listed["next"]
    rest = bob.call("GET", "/v1/telemetry/sessions", limit=50, cursor=listed["next"])
    ids = [s["sessionId"] for s in listed["sessions"] + rest["sessions"]]
    assert set(ids) == {ok["sessionId"], failed["sessionId"]} and len(ids) == 2


def test_the_events_of_a_slide_are_in_order(client_for: Callable[..., Client]) -> None:
    carol = client_for("carol")
    reader = client_for("carol", "events:read")
    upload_id = carol.upload_bytes(
        "slide", "s.png", pyvips.Image.black(300, 200).pngsave_buffer(), "image/png"
    )["uploadId"]
    carol.wait_until(lambda: carol.slide(upload_id), lambda s: s["status"] == "SUCCEEDED")
    job_id = carol.upload(upload_id)["jobs"][0]["jobId"]
    seen, since = [], 0
    while True:
        page = reader.events(since, 1000)
        seen += page["events"]
        if not page["events"]:
            break
        since = page["next"]
    assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1)), "gapless from 1"
    mine = [e["eventType"] for e in seen if e["subjectId"] in (upload_id, job_id)]
    assert mine == [
        "v1.upload.created",
        "v1.upload.ready",
        "v1.job.queued",
        "v1.job.claimed",
        "v1.slide.tiled",
        "v1.job.succeeded",
    ], mine
    created = next(e for e in seen if e["subjectId"] == upload_id)
    assert created["actor"] == "user:carol" and created["payload"]["filename"] == "s.png"
