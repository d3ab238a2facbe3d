"""API Gateway (HTTP API, payload format 2.0), locally: match the template's routes, turn
each request into the event API Gateway would send, invoke the function, send its reply.

`POST /_local/functions/{Name}/invoke` invokes any function with a JSON event (what
`aws lambda invoke` does), for scheduled functions on demand.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slipway_local.runtime import FunctionError, FunctionPool
from slipway_local.template import ACCOUNT, Route

log = logging.getLogger("slipway_local.gateway")
INTEGRATION_TIMEOUT = 30.0  # API Gateway's hard limit
TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/problem+json",
)


# What API Gateway routes; another method (TRACE, QUERY, ...) is a 405.
ROUTABLE_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _is_text(content_type: str, body: bytes = b"") -> bool:
    """A text body goes as a string; one that is not UTF-8 goes base64 (bytes kept exact)."""
    if not content_type.lower().startswith(TEXT_TYPES):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def build_event(
    route: Route,
    params: dict[str, str],
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    url = urlsplit(target)
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    text = _is_text(headers.get("content-type", "application/octet-stream"), body)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": headers.get("host", "localhost").split(".")[0],
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = body.decode() if text else base64.b64encode(body).decode()
    return event


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        pools: dict[str, FunctionPool],
        cors: dict[str, Any],
    ) -> None:
        self.routes = sorted(routes, key=lambda r: r.specificity)
        self.pools, self.cors = pools, cors
        super().__init__(address, _Handler)

    def allowed(self, path: str) -> str:
        """The methods the template routes for a path (only the greedy ANY route: all)."""
        methods = {r.method for r in self.routes if r.method != "ANY" and r.pattern.match(path)}
        return ", ".join(sorted((methods or ROUTABLE_METHODS) | {"OPTIONS"}))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, cookies: list[str] | None = None
    ) -> None:
        self.send_response(status)
        origin = self.headers.get("Origin")
        if (
            origin
            and self.server.cors
            and "access-control-allow-origin" not in {k.lower() for k in headers}
        ):
            headers = {**headers, "Access-Control-Allow-Origin": "*"}
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                log.info("%s %s: the client left before the reply", self.command, self.path)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server answers a method without a do_* handler 501: API Gateway says 405."""
        if code != HTTPStatus.NOT_IMPLEMENTED:
            super().send_error(code, message, explain)
            return
        self.close_connection = True  # its body (if any) stays unread
        allow = self.server.allowed(urlsplit(self.path).path)
        body = json.dumps({"message": "Method Not Allowed"}).encode()
        self._send(405, {"Content-Type": "application/json", "Allow": allow}, body)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _preflight(self) -> None:
        cors = self.server.cors
        self._send(
            204,
            {
                "Access-Control-Allow-Origin": ",".join(cors.get("AllowOrigins", ["*"])),
                "Access-Control-Allow-Methods": ",".join(cors.get("AllowMethods", ["*"])),
                "Access-Control-Allow-Headers": ",".join(cors.get("AllowHeaders", ["*"])),
                "Access-Control-Max-Age": str(cors.get("MaxAge", 0)),
            },
            b"",
        )

    def _handle(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path.startswith("/_local/functions/") and path.endswith("/invoke"):
            self._invoke_directly(path.split("/")[3], body)
            return
        if (
            self.command == "OPTIONS"
            and self.server.cors
            and "Access-Control-Request-Method" in self.headers
        ):
            self._preflight()
            return
        matched = self.server.match(self.command, path)
        if matched is None:
            self._json(404, {"message": "Not Found"})
            return
        route, params = matched
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        headers.setdefault("x-forwarded-proto", "http")
        event = build_event(
            route, params, self.command, self.path, headers, body, self.client_address[0]
        )
        try:
            reply = self.server.pools[route.function].invoke(event, INTEGRATION_TIMEOUT)
        except FunctionError as exc:
            log.warning("%s %s → %s", self.command, path, exc)
            status = 503 if exc.kind == "Timeout" else 500
            self._json(
                status,
                {"message": "Service Unavailable" if status == 503 else "Internal Server Error"},
            )
            return
        self._reply(reply, event["requestContext"]["requestId"])
        log.debug("%s %s in %.0f ms", self.command, path, (time.monotonic() - started) * 1000)

    def _reply(self, reply: Any, request_id: str) -> None:
        if not isinstance(reply, dict) or "statusCode" not in reply:
            self._json(200, reply)  # payload 2.0 infers a 200 JSON reply
            return
        headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
        headers["apigw-requestid"] = request_id  # as API Gateway adds: the correlation id
        for key, values in (reply.get("multiValueHeaders") or {}).items():
            headers[key] = ",".join(map(str, values))
        raw = reply.get("body") or ""
        data = base64.b64decode(raw) if reply.get("isBase64Encoded") else str(raw).encode()
        self._send(int(reply["statusCode"]), headers, data, reply.get("cookies"))

    def _invoke_directly(self, name: str, body: bytes) -> None:
        pool = self.server.pools.get(name)
        if pool is None:
            self._json(404, {"message": f"no function {name}"})
            return
        try:
            self._json(200, pool.invoke(json.loads(body or b"{}")))
        except FunctionError as exc:
            self._json(502, {"errorType": exc.kind, "errorMessage": str(exc)})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle
