"""Routes: /v1/health and /v1/openapi.json."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import db, storage
from slipway.api.http import json_response
from slipway.api.models import Health, documented
from slipway.config import settings
from slipway.errors import Code, SlipwayError

log = logging.getLogger(__name__)
HEALTH_DEADLINE_SECONDS = 4.0  # the contract answers within 5 s, whatever hangs


def _checks(probes: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Run the probes side by side; each is "ok" or "down: <why>" by the deadline."""
    workers = ThreadPoolExecutor(len(probes), thread_name_prefix="health")
    running = {what: workers.submit(probe) for what, probe in probes.items()}
    workers.shutdown(wait=False)  # a hung probe must not hold the answer
    deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
    states = {}
    for what, future in running.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            states[what] = "ok"
        except TimeoutError:  # past the deadline (or the probe's own timeout)
            states[what] = "down: timeout"
        except SlipwayError as exc:
            states[what] = f"down: {exc.code.value}"
        except Exception as exc:
            states[what] = f"down: {type(exc).__name__}"
        if states[what] != "ok":
            log.warning("%s is %s", what, states[what])
    return states


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
        states = _checks(
            {
                "database": db.ping,
                "storage": lambda: storage.ping([s.uploads_bucket, s.data_bucket, s.tiles_bucket]),
            }
        )
        down = [what for what, state in states.items() if state != "ok"]
        if not down:
            return json_response(200, {"status": "ok", **states})
        error = {"code": Code.UNAVAILABLE.value, "message": f"down: {', '.join(down)}"}
        return json_response(503, {"status": "degraded", **states, "error": error})

    @router.get("/v1/openapi.json")
    def openapi() -> Response[str]:
        return Response(200, "application/json", openapi_document())

    return router
