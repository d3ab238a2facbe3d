"""The contract's errors on every route: 400 for bad input (and nothing written), 401 for
no or bad token, 404 for another owner's resource (indistinguishable from none)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import psycopg
import pytest
import requests

from slipway.client import Client
from tests.support import FIXTURES, SECRET, token

NOBODY = str(uuid.uuid4())
# (method, path, body or None, query); the bearer is added per test
PROTECTED: list[tuple[str, str]] = [
    ("POST", "/v1/uploads"),
    ("POST", f"/v1/uploads/{NOBODY}/parts"),
    ("POST", f"/v1/uploads/{NOBODY}/complete"),
    ("GET", f"/v1/uploads/{NOBODY}"),
    ("GET", f"/v1/jobs/{NOBODY}"),
    ("POST", f"/v1/jobs/{NOBODY}/cancel"),
    ("GET", f"/v1/slides/{NOBODY}"),
    ("POST", f"/v1/telemetry/uploads/{NOBODY}/finalise"),
    ("GET", "/v1/telemetry/sessions"),
    ("GET", f"/v1/telemetry/sessions/{NOBODY}"),
    ("PUT", f"/v1/line-scans/{NOBODY}/tiles/{NOBODY}"),
    ("GET", f"/v1/line-scans/{NOBODY}/tiles/{NOBODY}"),
    ("GET", f"/v1/line-scans/{NOBODY}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/ops/stats"),
    ("GET", f"/v1/ops/jobs/{NOBODY}"),
    ("POST", f"/v1/ops/jobs/{NOBODY}/retry"),
]


def is_error(reply: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, (reply.status_code, reply.text[:300])
    body = reply.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "bearer",
    [
        None,
        "garbage",
        jwt.encode({"sub": "x"}, "a-different-secret-of-sufficient-length!", algorithm="HS256"),
        jwt.encode({"sub": "x", "exp": int(time.time()) - 60}, SECRET, algorithm="HS256"),
    ],
    ids=["none", "garbage", "wrong-secret", "expired"],
)
def test_no_or_bad_token_is_401(api: str, method: str, path: str, bearer: str | None) -> None:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    is_error(
        requests.request(method, api + path, headers=headers, json={}, timeout=30),
        401,
        "UNAUTHORIZED",
    )


def test_public_routes_need_no_token(api: str) -> None:
    health = requests.get(f"{api}/v1/health", timeout=30)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    spec = requests.get(f"{api}/v1/openapi.json", timeout=30).json()
    assert spec["openapi"].startswith("3.") and "/v1/uploads" in spec["paths"]
    is_error(requests.get(f"{api}/v1/slides/{NOBODY}/dzi/1-forged/slide.dzi", timeout=30), 404)


BAD_REQUESTS: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("POST", "/v1/uploads", "{not json", {}),
    ("POST", "/v1/uploads", [], {}),
    ("POST", "/v1/uploads", {"filename": "a", "size": 1}, {}),
    ("POST", "/v1/uploads", {"kind": "video", "filename": "a", "size": 1}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a", "size": "12"}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a", "size": -1}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a", "size": 0}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a", "size": 10**15}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "../a", "size": 1}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a\x07b", "size": 1}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": "a", "size": 1, "sha256": "xyz"}, {}),
    ("POST", "/v1/uploads", {"kind": "slide", "filename": 5, "size": 1}, {}),
    (
        "POST",
        "/v1/uploads",
        {"kind": "slide", "filename": "a", "size": 1, "contentType": "bogus"},
        {},
    ),
    ("POST", "/v1/uploads/not-a-uuid/parts", {"partNumbers": [1]}, {}),
    ("POST", f"/v1/uploads/{NOBODY}/parts", {"partNumbers": "1"}, {}),
    ("POST", f"/v1/uploads/{NOBODY}/parts", {"parts": [{"partNumber": "one"}]}, {}),
    ("POST", "/v1/uploads/not-a-uuid/complete", None, {}),
    ("POST", f"/v1/uploads/{NOBODY}/complete", {"parts": [{"partNumber": 1}]}, {}),
    ("GET", "/v1/uploads/123", None, {}),
    ("GET", "/v1/jobs/abc", None, {}),
    ("POST", "/v1/jobs/abc/cancel", None, {}),
    ("GET", "/v1/slides/abc", None, {}),
    ("POST", "/v1/telemetry/uploads/abc/finalise", None, {}),
    ("GET", "/v1/telemetry/sessions", None, {"limit": "0"}),
    ("GET", "/v1/telemetry/sessions", None, {"limit": "many"}),
    ("GET", "/v1/telemetry/sessions", None, {"cursor": "not-ours"}),
    ("GET", "/v1/telemetry/sessions/abc", None, {}),
    ("PUT", f"/v1/line-scans/abc/tiles/{NOBODY}", b"bytes", {}),
    ("PUT", f"/v1/line-scans/{NOBODY}/tiles/{NOBODY}", b"", {}),
    ("GET", "/v1/line-scans/abc", None, {}),
    ("GET", "/v1/events", None, {"since": "-1"}),
    ("GET", "/v1/events", None, {"limit": "0"}),
    ("GET", "/v1/events", None, {"wait": "31"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    BAD_REQUESTS,
    ids=[f"{m} {p} {b!r:.40} {q}" for m, p, b, q in BAD_REQUESTS],
)
def test_bad_input_is_400_with_the_error_body_and_writes_nothing(
    api: str,
    conn: psycopg.Connection[Any],
    method: str,
    path: str,
    body: Any,
    query: dict[str, Any],
) -> None:
    user = f"bad-input-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token(user, 'events:read')}"}
    sent: dict[str, Any] = {"json": body}  # a value: sent as JSON
    if isinstance(body, bytes | str):  # raw bytes, or text that is not valid JSON
        kind = "application/octet-stream" if isinstance(body, bytes) else "application/json"
        sent = {"data": body, "headers": headers | {"Content-Type": kind}}
    reply = requests.request(
        method, api + path, params=query, timeout=30, **({"headers": headers} | sent)
    )
    is_error(reply, 400)
    written = conn.execute(
        "SELECT count(*) AS n FROM events WHERE actor = %s", (f"user:{user}",)
    ).fetchone()
    assert written == {"n": 0}


def test_a_tile_over_5_mib_is_413(api: str) -> None:
    reply = requests.put(
        f"{api}/v1/line-scans/{uuid.uuid4()}/tiles/{uuid.uuid4()}",
        data=b"x" * (5 * 1024 * 1024 + 1),
        timeout=60,
        headers={
            "Authorization": f"Bearer {token('big')}",
            "Content-Type": "application/octet-stream",
        },
    )
    is_error(reply, 413, "PAYLOAD_TOO_LARGE")


def test_another_owners_resources_are_404_everywhere(
    api: str,
    client_for: Callable[..., Client],
) -> None:
    owner = client_for("owner-1")
    slide = owner.upload_bytes("slide", "s.png", b"\x89PNG not really", "image/png")["uploadId"]
    csv = owner.upload_bytes(
        "telemetry", "t.csv", (FIXTURES / "telemetry" / "sample_gnss_10hz.csv").read_bytes()
    )
    big = owner.create_upload("slide", "big.bin", 9 * 1024 * 1024)
    owner.wait_for_upload(csv["uploadId"])
    session = owner.finalise(csv["uploadId"])["sessionId"]
    job = owner.wait_until(lambda: owner.upload(slide), lambda u: bool(u["jobs"]))["jobs"][0]
    scan, tile = str(uuid.uuid4()), str(uuid.uuid4())
    owner.session.put(
        f"{api}/v1/line-scans/{scan}/tiles/{tile}",
        data=b"t",
        timeout=30,
        headers={"Content-Type": "application/octet-stream"},
    )

    other = {"Authorization": f"Bearer {token('owner-2')}"}
    attempts: list[tuple[str, str, Any]] = [
        ("POST", f"/v1/uploads/{big['uploadId']}/parts", {"partNumbers": [1]}),
        ("POST", f"/v1/uploads/{big['uploadId']}/complete", None),
        ("GET", f"/v1/uploads/{slide}", None),
        ("GET", f"/v1/jobs/{job['jobId']}", None),
        ("POST", f"/v1/jobs/{job['jobId']}/cancel", None),
        ("GET", f"/v1/slides/{slide}", None),
        ("POST", f"/v1/telemetry/uploads/{csv['uploadId']}/finalise", None),
        ("GET", f"/v1/telemetry/sessions/{session}", None),
        ("PUT", f"/v1/line-scans/{scan}/tiles/{tile}", b"t"),
        ("GET", f"/v1/line-scans/{scan}/tiles/{tile}", None),
        ("GET", f"/v1/line-scans/{scan}", None),
    ]
    for method, path, body in attempts:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        theirs = requests.request(method, api + path, headers=other, timeout=30, **kwargs)
        error = is_error(theirs, 404, "NOT_FOUND")
        nobody = requests.request(
            method,
            api + path.replace(slide, NOBODY).replace(csv["uploadId"], NOBODY),
            headers=other,
            timeout=30,
            **kwargs,
        )
        assert nobody.status_code == 404
        assert "owner-1" not in error["message"]
    listed = requests.get(f"{api}/v1/telemetry/sessions", headers=other, timeout=30).json()
    assert listed["sessions"] == []
    assert owner.upload(slide)["uploadId"] == slide, "the owner still sees it"


def test_the_events_stream_needs_its_scope(api: str) -> None:
    reply = requests.get(
        f"{api}/v1/events", timeout=30, headers={"Authorization": f"Bearer {token('no-scope')}"}
    )
    is_error(reply, 403, "FORBIDDEN")


# Hostile requests (issue 9, item 10): each answers a 4xx with the error body, never a 500.
UPLOAD = {"kind": "slide", "filename": "a.svs", "size": 10}
SOME_ID = "00000000-0000-4000-8000-000000000000"


def _post_upload(api: str, user: str, data: bytes | str, kind: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token(user)}"}
    if kind is not None:
        headers["Content-Type"] = kind
    return requests.post(f"{api}/v1/uploads", data=data, headers=headers, timeout=30)


def _written(conn: psycopg.Connection[Any], user: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM events WHERE actor = %s", (f"user:{user}",)
    ).fetchone()
    assert row is not None
    return int(row["n"])


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("text/plain", json.dumps(UPLOAD)),
        ("application/xml", "<upload><kind>slide</kind><size>10</size></upload>"),
        ("application/octet-stream", json.dumps(UPLOAD)),
        ("image/png", b"\x89PNG\r\n\x1a\n"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="kind"'),
        ("application/x-www-form-urlencoded", "kind=slide&filename=a.svs&size=10"),
    ],
    ids=["text", "xml", "octet-stream", "image", "multipart", "form"],
)
def test_a_body_of_a_type_the_route_does_not_take_is_415(
    api: str, conn: psycopg.Connection[Any], kind: str, body: str | bytes
) -> None:
    user = f"media-{uuid.uuid4().hex[:8]}"
    is_error(_post_upload(api, user, body, kind), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert _written(conn, user) == 0


def test_json_that_curl_labels_form_urlencoded_is_still_read_as_json(api: str) -> None:
    reply = _post_upload(api, "curl-d", json.dumps(UPLOAD), "application/x-www-form-urlencoded")
    assert reply.status_code == 201, reply.text
    also = _post_upload(api, "curl-d", json.dumps(UPLOAD), "application/json; charset=utf-8")
    assert also.status_code == 201, also.text


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"kind": "slide", "filename": "a", "size": 1, "x": '
        + '{"a":' * 50_000
        + "1"
        + "}" * 50_001,
        '{"kind": "slide", "filename": "' + "[" * 1000 + '", "size": 1, "x": [[[[[[[[[',
    ],
    ids=["array", "in-a-field", "objects", "unterminated"],
)
def test_json_nested_too_deep_or_malformed_is_400(
    api: str, conn: psycopg.Connection[Any], body: str
) -> None:
    user = f"deep-{uuid.uuid4().hex[:8]}"
    is_error(_post_upload(api, user, body, "application/json"), 400, "BAD_REQUEST")
    assert _written(conn, user) == 0


def test_json_nested_within_the_limit_is_read(api: str) -> None:
    """Brackets inside strings do not count, and 32 levels are fine (an unknown field)."""
    body = dict(UPLOAD, filename="[[[[.svs", extra=json.loads("[" * 31 + "]" * 31))
    assert _post_upload(api, "nested", json.dumps(body), "application/json").status_code == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"contentType": "text/plain\r"},
        {"contentType": "text/plain\r\nX-Injected: 1"},
        {"contentType": "text/plain\n"},
        {"contentType": "text/plain; charset=\u00e9"},
        {"contentType": "t\u00e9xt/plain"},
        {"sha256": "0a" * 31 + "  "},
        {"sha256": " " + "0a" * 31 + "0"},
        {"sha256": "0a" * 32 + "\n"},
        {"filename": "\ud800.svs"},
        {"filename": "a\u200bb.svs"},
        {"filename": ".."},
        {"size": 1.5},
        {"size": True},
    ],
    ids=repr,
)
def test_hostile_upload_fields_are_400(
    api: str, conn: psycopg.Connection[Any], fields: dict[str, Any]
) -> None:
    user = f"hostile-{uuid.uuid4().hex[:8]}"
    is_error(_post_upload(api, user, json.dumps(UPLOAD | fields), "application/json"), 400)
    assert _written(conn, user) == 0


def test_an_integer_too_long_to_read_is_400(api: str) -> None:
    body = '{"kind": "slide", "filename": "a", "size": ' + "9" * 5000 + "}"
    is_error(_post_upload(api, "digits", body, "application/json"), 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "position",
    [
        ["9999-12-31T23:59:59-23:59", SOME_ID],  # past Postgres' time zone range
        ["0001-01-01T00:00:00+23:59", SOME_ID],
        ["2026-01-01T00:00:00+00:00", "not-a-uuid"],
        {"a": 1, "b": 2},
    ],
    ids=repr,
)
def test_a_made_up_cursor_is_400(api: str, position: Any) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
    reply = requests.get(
        f"{api}/v1/telemetry/sessions",
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {token('cursor')}"},
        timeout=30,
    )
    is_error(reply, 400, "BAD_REQUEST")


def test_a_body_that_is_not_utf8_is_400(api: str) -> None:
    body = b'{"kind": "slide", "filename": "\xff\xfe", "size": 1}'
    is_error(_post_upload(api, "latin", body, "application/json"), 400, "BAD_REQUEST")


def test_a_part_digest_with_spaces_is_400(api: str, client_for: Callable[..., Client]) -> None:
    big = client_for("parts-hostile").create_upload("slide", "big.bin", 9 * 1024 * 1024)
    reply = requests.post(
        f"{api}/v1/uploads/{big['uploadId']}/parts",
        json={"parts": [{"partNumber": 1, "sha256": "0a" * 31 + "  "}]},
        headers={"Authorization": f"Bearer {token('parts-hostile')}"},
        timeout=30,
    )
    is_error(reply, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/v1/uploads", "OPTIONS, POST"),  # the gateway: a method it never routes
        ("TRACE", f"/v1/jobs/{NOBODY}", "GET, OPTIONS"),
        ("QUERY", "/v1/health", "GET, OPTIONS"),
        ("DELETE", "/v1/uploads", "OPTIONS, POST"),  # the API, from the whole contract
        ("PATCH", f"/v1/uploads/{NOBODY}", "GET, OPTIONS"),
        ("DELETE", "/v1/events", "GET, OPTIONS"),  # another function's path
        ("POST", f"/v1/line-scans/{NOBODY}", "GET, OPTIONS"),
    ],
)
def test_a_method_the_path_does_not_take_is_405_with_allow(
    api: str, method: str, path: str, allowed: str
) -> None:
    reply = requests.request(
        method, api + path, headers={"Authorization": f"Bearer {token('methods')}"}, timeout=30
    )
    assert reply.status_code == 405, (reply.status_code, reply.text[:200])
    assert reply.headers["Allow"] == allowed


def test_an_unknown_path_is_still_404(api: str) -> None:
    reply = requests.delete(
        f"{api}/v1/nothing-here",
        headers={"Authorization": f"Bearer {token('methods')}"},
        timeout=30,
    )
    is_error(reply, 404, "NOT_FOUND")
