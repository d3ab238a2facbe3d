"""Routes: /v1/jobs."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import jobs
from slipway.api.http import json_response, principal
from slipway.api.models import JobPage, JobStatus, JobView, documented

JobId = Annotated[UUID, Path(alias="jobId")]


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get("/v1/jobs", responses=documented(JobPage, 200, "a page", 400, 401))
    def list_jobs(
        status: Annotated[JobStatus | None, Query()] = None,
        job_type: Annotated[str | None, Query(alias="type", min_length=1, max_length=64)] = None,
        upload_id: Annotated[UUID | None, Query(alias="uploadId")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response[str]:
        """The caller's jobs, newest first; pass `next` back as `cursor` for more."""
        page = jobs.list_for_owner(
            principal(router).owner,
            limit=limit,
            cursor=cursor,
            status=status,
            job_type=job_type,
            upload_id=upload_id,
        )
        return json_response(200, page)

    @router.get("/v1/jobs/<jobId>", responses=documented(JobView, 200, "the job", 401, 404))
    def get_job(job_id: JobId) -> Response[str]:
        return json_response(200, jobs.get(job_id, principal(router).owner).to_api())

    @router.post(
        "/v1/jobs/<jobId>/cancel",
        responses=documented(JobView, 200, "cancelled (it was QUEUED)", 401, 404, 409)
        | documented(JobView, 202, "cancel requested: the job stops at its next checkpoint"),
    )
    def cancel_job(job_id: JobId) -> Response[str]:
        """Cancel a QUEUED job at once (200, `CANCELLED`) or a RUNNING one cooperatively
        (202, still `RUNNING` with `cancelRequestedAt`; it ends `CANCELLED`, nothing of it
        left visible). 409 once it has ended."""
        job = jobs.cancel(job_id, principal(router).owner)
        return json_response(200 if job.status == "CANCELLED" else 202, job.to_api())

    @router.post(
        "/v1/jobs/<jobId>/retry", responses=documented(JobView, 200, "re-queued", 401, 404, 409)
    )
    def retry_job(job_id: JobId) -> Response[str]:
        """Re-queue a FAILED or CANCELLED job with a fresh attempt budget (409 otherwise)."""
        return json_response(200, jobs.retry(job_id, principal(router).owner).to_api())

    return router
