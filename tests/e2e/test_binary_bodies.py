"""Binary bodies survive the whole path: API Gateway's base64 both ways, the functions."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pyvips
import requests

from slipway.client import Client
from tests.support import token


def test_line_scan_tile_bytes_round_trip(api: str, client_for: Callable[..., Client]) -> None:
    scan, tile = uuid.uuid4(), uuid.uuid4()
    body = os.urandom(3 * 1024 * 1024) + b"\x00\xff\x89PNG"
    url = f"{api}/v1/line-scans/{scan}/tiles/{tile}"
    auth = {"Authorization": f"Bearer {token('scanner-2')}"}
    stored = requests.put(
        url, data=body, timeout=60, headers=auth | {"Content-Type": "application/octet-stream"}
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["state"] == "ready" and stored.json()["attempts"] == 1
    again = requests.put(
        url, data=body, timeout=60, headers=auth | {"Content-Type": "application/octet-stream"}
    )
    assert again.json()["attempts"] == 1, "the same PUT again changes nothing"
    fetched = requests.get(url, headers=auth, timeout=60)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == "application/octet-stream"
    assert fetched.content == body
    listing = requests.get(f"{api}/v1/line-scans/{scan}", headers=auth, timeout=30).json()
    assert [t["tileId"] for t in listing["tiles"]] == [str(tile)]
    missing = requests.get(
        f"{api}/v1/line-scans/{scan}/tiles/{uuid.uuid4()}", headers=auth, timeout=30
    )
    assert missing.status_code == 404


def test_the_viewer_serves_its_script_and_images(api: str) -> None:
    script = requests.get(f"{api}/v1/static/openseadragon/openseadragon.min.js", timeout=30)
    assert script.status_code == 200 and "OpenSeadragon" in script.text
    image = requests.get(f"{api}/v1/static/openseadragon/images/zoomin_rest.png", timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert pyvips.Image.new_from_buffer(image.content, "").width > 0
    for bad in ("x.exe", ".hidden.js", "missing.js", "images%2F..%2Fx.js"):
        assert requests.get(f"{api}/v1/static/openseadragon/{bad}", timeout=30).status_code == 404
