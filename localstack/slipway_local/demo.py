"""`make run`'s demo: a client of the running local stack, using only the HTTP API and
.slipway/local.env. It uploads a sample slide (generated once, 6000×4000 px) and the
sample telemetry CSV through pre-signed URLs, waits for tiling and parsing, and prints
what a user would look at. The stack stays up afterwards."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from slipway.auth import issue_token
from slipway.client import Client

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = ROOT / "tests" / "fixtures" / "telemetry" / "sample_gnss_10hz.csv"


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def sample_slide(path: Path) -> Path:
    """A synthetic 'stained tissue' image: smooth noise in pink and purple on white."""
    if path.exists():
        return path
    import pyvips

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = 6000, 4000
    noise = pyvips.Image.perlin(width, height, cell_size=256, seed=7)
    detail = pyvips.Image.perlin(width, height, cell_size=24, seed=11)
    tissue = (noise * 0.8 + detail * 0.2 > 0.05).ifthenelse(255, 0).cast("uchar").gaussblur(4)
    shade = ((detail + 1) * 0.5).linear(1, 0)
    pink = [233, 150, 190]
    purple = [120, 60, 150]
    stain = shade * [p - q for p, q in zip(purple, pink, strict=True)] + pink
    slide = (tissue / 255) * stain + (1 - tissue / 255) * [250, 250, 250]
    slide.cast("uchar").copy(interpretation="srgb").jpegsave(str(path), Q=85)
    return path


def show(title: str, fields: dict[str, Any]) -> None:
    print(f"\n{title}")
    for key, value in fields.items():
        print(f"  {key:12} {value}")


def main() -> int:
    env = read_env(ROOT / ".slipway" / "local.env")
    secret, api = env["SLIPWAY_JWT_SECRET"], env["SLIPWAY_API_URL"]
    client = Client(api, issue_token("demo", secret=secret))
    reader = Client(api, issue_token("demo", ["events:read"], secret=secret))
    started = time.monotonic()

    slide_file = sample_slide(ROOT / ".slipway" / "demo" / "sample-slide.jpg")
    print(
        f"uploading {slide_file.name} ({slide_file.stat().st_size / 1e6:.1f} MB) "
        f"and {SAMPLE_CSV.name} through pre-signed URLs…"
    )
    slide_id = client.upload_file(slide_file, "slide", content_type="image/jpeg")
    csv_id = client.upload_file(SAMPLE_CSV, "telemetry", content_type="text/csv")

    slide = client.wait_until(
        lambda: client.slide(slide_id),
        lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        timeout=300,
    )
    upload = client.wait_for_upload(csv_id)
    session_id = client.finalise(csv_id)["sessionId"]  # idempotent: the automatic session
    session = client.wait_until(
        lambda: client.session_of(session_id), lambda s: s["status"] != "processing", timeout=300
    )
    slide_upload = client.upload(slide_id)
    tile_job = client.job(slide["jobId"])

    show(
        "Slide",
        {
            "upload": f"{slide_id} {slide_upload['state']} sha256 "
            f"{slide_upload['sha256'][:16]}… blake3 {slide_upload['blake3'][:16]}…",
            "tile job": f"{tile_job['jobId']} {tile_job['status']} "
            f"(attempt {tile_job['attemptCount']}/{tile_job['maxAttempts']})",
            "pyramid": f"{slide['width']}×{slide['height']} px, {slide['levels']} levels, "
            f"{slide['tileCount']} tiles",
            "source": f"{slide['source']['format']}" if slide.get("source") else "unknown",
            "dziUrl": slide["dziUrl"],
            "iiifUrl": slide.get("iiifUrl") or "none (the pyramid is not IIIF-aligned)",
            "viewerUrl": slide["viewerUrl"],
        },
    )
    stream = session["streams"][0] if session["streams"] else {}
    show(
        "Telemetry",
        {
            "upload": f"{csv_id} {upload['state']}",
            "session": f"{session_id} {session['status']}",
            "time range": f"{session['startTimeUtc']} → {session['endTimeUtc']}",
            "gnss_pvt": f"{stream.get('rows')} rows",
            "parquetUrl": stream.get("parquetUrl"),
            **({"failure": session["failure"]} if "failure" in session else {}),
        },
    )
    latest = reader.events(0, 1000)["events"][-8:]
    print("\nLast events")
    for e in latest:
        print(f"  #{e['sequence']:<5} {e['eventType']:26} {e['subjectKind']:8} {e['subjectId']}")
    print(f"\nDone in {time.monotonic() - started:.1f} s. The stack is still up:")
    for key in ("SLIPWAY_API_URL", "AWS_ENDPOINT_URL", "DATABASE_URL"):
        print(f"  {key}={env[key]}")
    print(f"  (all endpoints: .slipway/local.env; API: {api}/v1/openapi.json; stop: make down)")
    ok = slide["status"] == "SUCCEEDED" and session["status"] == "ready"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
