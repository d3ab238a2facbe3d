"""Building a function's resolver: validation, identity, and the contract's error bodies."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import auth, errors
from slipway.errors import Code, SlipwayError

log = logging.getLogger(__name__)

# Routes that take no bearer token: they are public, or carry a capability in the path.
_PUBLIC = re.compile(
    r"^/v1/(health|openapi\.json|ops|upload|dev/sign-in|static/.+"
    r"|slides/[^/]+/(dzi|iiif|associated|viewer)/.+)$"
)
# JSON deeper than this is refused before it is parsed (json.loads recurses once per level).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_FORM = "application/x-www-form-urlencoded"


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
        what = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":  # its loc is the character's position
            reason = err.get("ctx", {}).get("error", "")
            where, what = "body", f"not valid JSON at character {where}: {reason}"
        if err.get("type") == "string_pattern_mismatch":  # not the (long) pattern itself
            what = "has a form the API does not accept (see its pattern in the OpenAPI document)"
        problems.append(f"{where or 'body'}: {what}")
    return "; ".join(problems) or "invalid request"


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether a JSON text nests deeper than `limit`, found without parsing it."""
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def _unsupported(kind: str) -> SlipwayError:
    return SlipwayError(
        Code.UNSUPPORTED_MEDIA_TYPE,
        f"this route takes application/json, not {kind[:100]}",
        status=415,
    )


class _JsonBodies(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading bodies as this API takes them: JSON (or an
    object that curl -d labels form-urlencoded), nested at most MAX_JSON_DEPTH deep. Any
    other type is a 415, malformed or over-deep JSON a 400, and an empty body no body. Only
    routes that declare a body read it here (the line-scan PUT reads its bytes itself)."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        if not event.get("body"):
            return None
        kind = event.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        json_kind = not kind or kind == "application/json" or kind.endswith("+json")
        if not json_kind and kind != _FORM:
            raise _unsupported(kind)
        try:
            text = event.decoded_body or ""
        except ValueError as exc:  # UnicodeDecodeError, binascii.Error
            raise errors.bad_request("the body is not UTF-8 JSON") from exc
        if not json_kind and not text.lstrip().startswith("{"):  # curl -d sends JSON as form
            raise _unsupported(kind)
        if json_depth_exceeds(text, MAX_JSON_DEPTH):
            raise errors.bad_request(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            return self._parse_json_data(app)  # malformed JSON: a RequestValidationError
        except ValueError as exc:  # an integer of more than 4300 digits
            raise errors.bad_request(f"the JSON is not readable: {exc}"[:200]) from exc


class Resolver(APIGatewayHttpResolver):
    """Authenticates before anything else (a request without a valid token is a 401, even
    when its body is also wrong), then resolves as Powertools does, with JSON bodies read
    by _JsonBodies; its OpenAPI document states the answers this resolver gives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._request_validation_middleware = _JsonBodies()

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        event = dict(event)
        http = event.get("requestContext", {}).get("http", {})
        path = event.get("rawPath") or http.get("path", "")
        if http.get("method") != "OPTIONS" and not _PUBLIC.match(path):
            try:
                self.append_context(principal=auth.authenticate(event))
            except SlipwayError as exc:
                return _raw(exc.status, exc.body())
        return super().resolve(event, context)

    def get_openapi_json_schema(self, *args: Any, **kwargs: Any) -> str:
        document = json.loads(super().get_openapi_json_schema(*args, **kwargs))
        return json.dumps(_as_served(document), indent=2)


def _raw(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _error_reply(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _as_served(document: dict[str, Any]) -> dict[str, Any]:
    """Powertools' document, corrected to what this resolver answers on every route: bad
    input is a 400 (never its 422), a body that is not JSON a 415, a route without a valid
    token a 401 (declared as bearer security), an id that is none of the caller's a 404.
    The routes' own `responses=` declare the rest."""
    from slipway.api.models import ErrorBody, ErrorDetail

    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            responses.pop("422", None)
            if operation.get("parameters") or "requestBody" in operation:
                responses.setdefault("400", _error_reply("bad input"))
            if "requestBody" in operation:
                responses.setdefault("415", _error_reply("the body is not application/json"))
            if "{" in path:
                responses.setdefault("404", _error_reply("not found, or another owner's"))
            if not _PUBLIC.match(path):
                responses.setdefault("401", _error_reply("no valid bearer token"))
                operation["security"] = [{"bearer": []}]
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    used = json.dumps(document["paths"])
    for powertools in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        if f'"#/components/schemas/{powertools}"' not in used:
            schemas.pop(powertools, None)
    ref = "#/components/schemas/{model}"
    schemas.setdefault("ErrorDetail", ErrorDetail.model_json_schema(ref_template=ref))
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template=ref))
    schemas["ErrorBody"].pop("$defs", None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    return document


@cache
def _contract_paths() -> list[tuple[re.Pattern[str], str]]:
    """Each path of the whole API's contract (all functions) and the methods it takes."""
    from slipway.api.meta import openapi_document

    found = []
    for path, operations in json.loads(openapi_document())["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
        methods = ", ".join(sorted({m.upper() for m in operations} | {"OPTIONS"}))
        found.append((re.compile(f"^{pattern}$"), methods))
    return found


def allowed_methods(path: str) -> str | None:
    """The `Allow` header for a path the contract has, or None for a path it has not."""
    return next((methods for pattern, methods in _contract_paths() if pattern.match(path)), None)


def resolver(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    auth.check_secrets()  # a function with a published or short secret refuses to start
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
        allow = allowed_methods(app.current_event.path)
        if allow is None:
            return error_response(404, Code.NOT_FOUND.value, "no such route")
        reply = error_response(405, Code.METHOD_NOT_ALLOWED.value, f"this path takes {allow}")
        reply.headers["Allow"] = allow
        return reply

    @app.exception_handler(Exception)
    def _crash(exc: Exception) -> Response[str]:
        log.exception("unhandled error")
        return error_response(500, Code.INTERNAL.value, "internal error; it has been logged")

    return app


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
