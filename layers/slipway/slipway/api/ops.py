"""Routes: /v1/ops — the operator page and its data, across all owners.

The page is static (no data, no token); its script calls the data routes with the token
the operator pastes: `ops:read` for the figures and any owner's job, `ops:write` to retry
one (an owner retries their own through /v1/jobs/{id}/retry). docs/operations.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import auth, db, jobs, stats
from slipway.api.http import json_response, principal
from slipway.api.models import OpsJob, OpsStats, documented, media

JobId = Annotated[UUID, Path(alias="jobId")]
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@cache
def _page() -> tuple[str, dict[str, str]]:
    """The page and its headers: a policy that runs only the page's own script (by its
    hash) and lets it talk only to this API, so no data it shows can run as code."""
    page = resources.files("slipway").joinpath("static", "ops.html").read_text()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _SCRIPT.findall(page)
    )
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return page, headers


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get("/v1/ops", responses=media(200, "the operator page", "text/html"))
    def get_ops_page() -> Response[str]:
        """The operator page: static; its data needs a token with `ops:read`."""
        page, headers = _page()
        return Response(200, "text/html; charset=utf-8", page, headers=dict(headers))

    @router.get("/v1/ops/stats", responses=documented(OpsStats, 200, "the figures now", 401, 403))
    def get_ops_stats(hours: Annotated[int, Query(ge=1, le=stats.MAX_HOURS)] = 24) -> Response[str]:
        """Queues, throughput (last hour), failures by code, slowest runs and uploads (last
        `hours`), across all owners (scope `ops:read`)."""
        auth.require_scope(principal(router), auth.OPS_READ)
        with db.connect() as conn:
            return json_response(200, stats.snapshot(conn, hours))

    @router.get("/v1/ops/jobs/<jobId>", responses=documented(OpsJob, 200, "the job", 401, 403, 404))
    def get_ops_job(job_id: JobId) -> Response[str]:
        """Any owner's job, with its owner and correlation (scope `ops:read`)."""
        auth.require_scope(principal(router), auth.OPS_READ)
        return json_response(200, stats.job_detail(jobs.get(job_id)))

    @router.post(
        "/v1/ops/jobs/<jobId>/retry",
        responses=documented(OpsJob, 200, "re-queued", 401, 403, 404, 409),
    )
    def retry_ops_job(job_id: JobId) -> Response[str]:
        """Re-queue any owner's FAILED or CANCELLED job (scope `ops:write`)."""
        caller = principal(router)
        auth.require_scope(caller, auth.OPS_WRITE)
        return json_response(200, stats.job_detail(jobs.retry(job_id, caller.owner, operator=True)))

    return router
