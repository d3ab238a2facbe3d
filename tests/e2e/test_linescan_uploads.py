"""Line-scan tiles over HTTP: body types, bytes kept exact, and tiles above the inline
limit through a pre-signed PUT to the real LocalStack."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from slipway.client import INLINE_TILE_LIMIT, ApiError, Client
from slipway_local.gateway import build_event
from slipway_local.template import Route
from tests.support import MiB, token

PUT_ROUTE = Route("PUT", "/v1/line-scans/{scanId}/tiles/{tileId}", "LineScanFunction")


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


def test_a_text_body_from_api_gateway_is_stored_as_the_utf8_sent(api: str) -> None:
    """API Gateway hands a text body over as the string it decoded as UTF-8 (not base64):
    the function must store the UTF-8 bytes, not a latin-1 re-encoding."""
    for text in ("é", "é€😀 line-scan"):
        scan, tile = uuid.uuid4(), uuid.uuid4()
        path = f"/v1/line-scans/{scan}/tiles/{tile}"
        sent = text.encode("utf-8")
        headers = _auth("texter") | {"content-type": "image/svg+xml; charset=utf-8"}
        event = build_event(
            PUT_ROUTE, {"scanId": str(scan), "tileId": str(tile)}, "PUT", path, headers, sent, "::1"
        )
        event |= {"isBase64Encoded": False, "body": text}
        invoked = requests.post(
            f"{api}/_local/functions/LineScanFunction/invoke", data=json.dumps(event), timeout=60
        )
        assert invoked.status_code == 200, invoked.text
        reply = invoked.json()
        assert reply["statusCode"] == 200, reply
        assert json.loads(reply["body"])["sha256"] == hashlib.sha256(sent).hexdigest()
        fetched = requests.get(f"{api}{path}", headers=_auth("texter"), timeout=30)
        assert fetched.status_code == 200 and fetched.content == sent


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=utf-8", "é€😀".encode()),
        ("text/plain", b"\xff\xfe not UTF-8"),
        ("application/json", b'{"a": 1}'),
        ("application/x-www-form-urlencoded", b"a=1"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ],
)
def test_other_body_types_are_415(api: str, content_type: str, body: bytes) -> None:
    scan, tile = uuid.uuid4(), uuid.uuid4()
    url = f"{api}/v1/line-scans/{scan}/tiles/{tile}"
    reply = requests.put(
        url, data=body, headers=_auth("typist") | {"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 415, reply.text
    assert reply.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert requests.get(url, headers=_auth("typist"), timeout=30).status_code == 404


@pytest.mark.parametrize("content_type", ["image/png", "image/x-portable-graymap", None])
def test_octet_stream_and_images_are_stored_byte_for_byte(
    api: str, content_type: str | None
) -> None:
    scan, tile = uuid.uuid4(), uuid.uuid4()
    url = f"{api}/v1/line-scans/{scan}/tiles/{tile}"
    body = "é€😀".encode() + bytes(range(256))
    headers = _auth("imager") | ({"Content-Type": content_type} if content_type else {})
    stored = requests.put(url, data=body, headers=headers, timeout=30)
    assert stored.status_code == 200, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert requests.get(url, headers=_auth("imager"), timeout=30).content == body


def _paths_called(client: Client) -> list[str]:
    called: list[str] = []

    def note(reply: requests.Response, *args: Any, **kwargs: Any) -> None:
        called.append(f"{reply.request.method} {reply.request.path_url}")

    client.session.hooks["response"].append(note)
    return called


def test_a_tile_above_the_inline_limit_goes_through_a_presigned_put(
    api: str, client_for: Callable[..., Client]
) -> None:
    client = client_for("big-scanner")
    scan, tile = str(uuid.uuid4()), str(uuid.uuid4())
    data = os.urandom(4 * MiB + MiB // 2 + 17)  # 4.5 MiB: over Lambda's limit in base64
    assert len(data) > INLINE_TILE_LIMIT
    assert len(base64.b64encode(data)) > 6_000_000
    called = _paths_called(client)

    done = client.put_tile(scan, tile, data)
    assert done["state"] == "ready" and done["attempts"] == 1
    assert done["sha256"] == hashlib.sha256(data).hexdigest() and done["size"] == len(data)
    base = f"/v1/line-scans/{scan}/tiles/{tile}"
    assert called == [f"POST {base}/upload", f"POST {base}/complete"], "no inline PUT"
    assert client.tile_bytes(scan, tile) == data
    assert client.line_scan(scan)["counts"] == {"ready": 1}

    again = client.put_tile(scan, tile, data)  # the same bytes again: nothing to PUT
    assert again["state"] == "ready" and again["attempts"] == 1
    with pytest.raises(ApiError) as caught:
        client.put_tile(scan, tile, os.urandom(len(data)))
    assert caught.value.status == 409
    with pytest.raises(ApiError) as caught:  # another owner's scan
        client_for("intruder").put_tile(scan, str(uuid.uuid4()), data)
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:  # the upload route: an oversize size is a 400
        client.put_tile(scan, str(uuid.uuid4()), os.urandom(5 * MiB + 1))
    assert caught.value.status == 400


def test_the_signed_put_takes_only_the_declared_bytes(
    api: str, client_for: Callable[..., Client]
) -> None:
    client = client_for("careful-scanner")
    scan, tile = str(uuid.uuid4()), str(uuid.uuid4())
    data = os.urandom(INLINE_TILE_LIMIT + 1)
    sha = hashlib.sha256(data).hexdigest()
    base = f"/v1/line-scans/{scan}/tiles/{tile}"
    signed = client.call("POST", f"{base}/upload", {"size": len(data), "sha256": sha})
    assert signed["state"] == "pending" and signed["upload"]["method"] == "PUT"
    with pytest.raises(ApiError) as caught:  # nothing stored yet
        client.call("POST", f"{base}/complete", {"sha256": sha})
    assert caught.value.status == 409 and caught.value.code == "NOT_UPLOADED"
    upload = signed["upload"]
    tampered = requests.put(
        upload["url"], data=os.urandom(len(data)), headers=upload["headers"], timeout=60
    )
    assert tampered.status_code >= 400, "storage took bytes the signature does not cover"
    with pytest.raises(ApiError) as caught:
        client.tile_bytes(scan, tile)
    assert caught.value.status == 409  # still pending
    client.put(upload["url"], upload["headers"], data)
    done = client.call("POST", f"{base}/complete", {"sha256": sha})
    assert done["state"] == "ready" and done["sha256"] == sha
    assert client.tile_bytes(scan, tile) == data
