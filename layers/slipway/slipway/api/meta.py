"""Routes: /v1/health and /v1/openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import db, storage
from slipway.api.http import json_response
from slipway.api.models import Health, documented
from slipway.config import settings

log = logging.getLogger(__name__)


def _check(what: str, probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:
        log.warning("%s is down: %s", what, exc)
        return f"down: {type(exc).__name__}"
    return "ok"


@cache
def openapi_document() -> str:
    from slipway.api.http import resolver
    from slipway.api.routes import all_routers

    app = resolver(*all_routers())  # fresh routers: never rebinds a live function's
    return app.get_openapi_json_schema(
        title="Slipway API",
        version="1.0.0",
        description="Pre-signed uploads of very large scientific files, tiling, telemetry "
        'parsing and the event log. Errors: {"error": {"code", "message"}}.',
    )


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get("/v1/health", responses=documented(Health, 200, "all up", 503))
    def health() -> Response[str]:
        s = settings()
        body = {
            "database": _check("database", db.ping),
            "storage": _check(
                "storage", lambda: storage.ping([s.uploads_bucket, s.data_bucket, s.tiles_bucket])
            ),
        }
        up = all(v == "ok" for v in body.values())
        return json_response(200 if up else 503, {"status": "ok" if up else "degraded", **body})

    @router.get("/v1/openapi.json")
    def openapi() -> Response[str]:
        return Response(200, "application/json", openapi_document())

    return router
