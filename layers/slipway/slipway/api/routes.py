"""Every router of the API: the whole HTTP contract in one list."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter


def all_routers() -> list[APIGatewayHttpRouter]:
    from slipway.api import events, jobs, linescan, meta, slides, telemetry, uploads

    return [m.routes() for m in (uploads, jobs, slides, telemetry, linescan, events, meta)]
