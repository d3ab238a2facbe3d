"""Routes: /v1/jobs."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import jobs
from slipway.api.http import json_response, principal
from slipway.api.models import JobView, documented

JobId = Annotated[UUID, Path(alias="jobId")]


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get("/v1/jobs/<jobId>", responses=documented(JobView, 200, "the job", 401, 404))
    def get_job(job_id: JobId) -> Response[str]:
        return json_response(200, jobs.get(job_id, principal(router).owner).to_api())

    @router.post(
        "/v1/jobs/<jobId>/cancel", responses=documented(JobView, 200, "cancelled", 401, 404, 409)
    )
    def cancel_job(job_id: JobId) -> Response[str]:
        """Cancel a QUEUED job (409 once it runs or has ended)."""
        return json_response(200, jobs.cancel(job_id, principal(router).owner).to_api())

    return router
