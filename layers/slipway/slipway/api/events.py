"""Routes: /v1/events — tail the log (long-poll)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import auth, db, events
from slipway.api.http import json_response, principal
from slipway.api.models import EventPage, documented
from slipway.errors import Code, SlipwayError

# API Gateway ends an integration at 30 s: answer (empty) before that, not with a 503.
MAX_WAIT_SECONDS = 28.0


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get(
        "/v1/events", responses=documented(EventPage, 200, "events after `since`", 401, 403)
    )
    def get_events(
        since: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        wait: Annotated[float, Query(ge=0, le=30)] = 0,
    ) -> Response[str]:
        """Events with sequence > `since`, in order; with `wait`, block until one commits."""
        if auth.EVENTS_READ not in principal(router).scopes:
            raise SlipwayError(
                Code.FORBIDDEN, f"the token lacks the {auth.EVENTS_READ} scope", status=403
            )
        with db.connect() as conn:
            found = (
                events.wait_for(conn, since, limit, min(wait, MAX_WAIT_SECONDS))
                if wait
                else events.read(conn, since, limit)
            )
        next_since = found[-1].sequence if found else since
        return json_response(200, {"events": [e.to_api() for e in found], "next": next_since})

    return router
