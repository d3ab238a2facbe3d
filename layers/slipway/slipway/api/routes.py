"""Every router of the API: the whole HTTP contract in one list."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter


def all_routers() -> list[APIGatewayHttpRouter]:
    from slipway.api import (
        dev_signin,
        events,
        jobs,
        linescan,
        meta,
        ops,
        slides,
        telemetry,
        upload_page,
        uploads,
    )

    modules = (uploads, jobs, slides, telemetry, linescan, events, ops, upload_page, dev_signin)
    return [m.routes() for m in (*modules, meta)]
