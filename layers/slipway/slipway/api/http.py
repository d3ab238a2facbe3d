"""Building a function's resolver: validation, identity, and the contract's error bodies."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import auth
from slipway.errors import Code, SlipwayError

log = logging.getLogger(__name__)

# Routes that take no bearer token: they are public, or carry a capability in the path.
_PUBLIC = re.compile(r"^/v1/(health|openapi\.json|static/.+|slides/[^/]+/(dzi|viewer)/.+)$")


def error_response(status: int, code: str, message: str) -> Response[str]:
    return json_response(status, {"error": {"code": code, "message": message}})


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, "application/json", json.dumps(body), headers=headers)


def principal(router: APIGatewayHttpRouter | APIGatewayHttpResolver) -> auth.Principal:
    found = router.context.get("principal")
    if not isinstance(found, auth.Principal):
        raise auth.unauthorized("authentication required")
    return found


def base_url(router: APIGatewayHttpRouter | APIGatewayHttpResolver) -> str:
    """The scheme and host the client used (links we return must work for it)."""
    event = router.current_event
    headers = event.headers or {}
    proto = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    host = headers.get("host") or event.request_context.domain_name
    stage = event.request_context.stage
    suffix = "" if not stage or stage == "$default" else f"/{stage}"
    return f"{proto}://{host}{suffix}"


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


class Resolver(APIGatewayHttpResolver):
    """Authenticates before anything else (a request without a valid token is a 401, even
    when its body is also wrong), then resolves as Powertools does."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        event = dict(event)
        http = event.get("requestContext", {}).get("http", {})
        path = event.get("rawPath") or http.get("path", "")
        if http.get("method") != "OPTIONS" and not _PUBLIC.match(path):
            try:
                self.append_context(principal=auth.authenticate(event))
            except SlipwayError as exc:
                return _raw(exc.status, exc.body())
        _read_json_as_json(event)
        return super().resolve(event, context)


def _raw(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _read_json_as_json(event: dict[str, Any]) -> None:
    """Bodies are JSON. curl -d labels them form-urlencoded: read an object as JSON anyway."""
    headers = event["headers"] = dict(event.get("headers") or {})
    kind = next((k for k in headers if k.lower() == "content-type"), None)
    body = event.get("body") or ""
    if (
        kind
        and headers[kind].startswith("application/x-www-form-urlencoded")
        and not event.get("isBase64Encoded")
        and body.lstrip().startswith("{")
    ):
        headers[kind] = "application/json"


def resolver(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    app = Resolver(
        enable_validation=True,
        cors=CORSConfig(
            allow_origin="*", allow_headers=["Authorization", "Content-Type"], max_age=600
        ),
    )
    for router in routers:
        app.include_router(router)

    @app.exception_handler(SlipwayError)
    def _slipway_error(exc: SlipwayError) -> Response[str]:
        if exc.status >= 500:
            log.warning("request failed: %s", exc.message, extra={"code": exc.code.value})
        return json_response(exc.status, exc.body())

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return error_response(400, Code.BAD_REQUEST.value, _describe(exc))

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response[str]:
        return error_response(404, Code.NOT_FOUND.value, "no such route")

    @app.exception_handler(Exception)
    def _crash(exc: Exception) -> Response[str]:
        log.exception("unhandled error")
        return error_response(500, Code.INTERNAL.value, "internal error; it has been logged")

    return app


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
