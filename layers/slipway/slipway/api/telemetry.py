"""Routes: /v1/telemetry (finalise, sessions)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway.api.http import base_url, json_response, principal
from slipway.api.models import Finalised, SessionPage, SessionView, documented
from slipway.telemetry import sessions


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.post(
        "/v1/telemetry/uploads/<uploadId>/finalise",
        responses=documented(Finalised, 200, "the session", 401, 404, 409),
    )
    def finalise(upload_id: Annotated[UUID, Path(alias="uploadId")]) -> Response[str]:
        """Session + processing run + parse job for a ready upload (idempotent)."""
        session_id = sessions.finalise(upload_id, principal(router).owner)
        return json_response(
            200,
            {
                "sessionId": str(session_id),
                "pollUrl": f"{base_url(router)}/v1/telemetry/sessions/{session_id}",
            },
        )

    @router.get(
        "/v1/telemetry/sessions", responses=documented(SessionPage, 200, "a page", 400, 401)
    )
    def list_sessions(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response[str]:
        """The caller's sessions, newest first; pass `next` back as `cursor` for more."""
        return json_response(200, sessions.list_for_owner(principal(router).owner, limit, cursor))

    @router.get(
        "/v1/telemetry/sessions/<sessionId>",
        responses=documented(SessionView, 200, "the session", 401, 404),
    )
    def get_session(session_id: Annotated[UUID, Path(alias="sessionId")]) -> Response[str]:
        return json_response(200, sessions.get(session_id, principal(router).owner))

    return router
