"""Routes: /v1/uploads (presign and upload-complete)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import uploads
from slipway.api.http import json_response, principal
from slipway.api.models import (
    Complete,
    CreateUpload,
    PartsSigned,
    SignParts,
    UploadCreated,
    UploadView,
    documented,
)

UploadId = Annotated[UUID, Path(alias="uploadId")]


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.post("/v1/uploads", responses=documented(UploadCreated, 201, "pending", 400, 401))
    def create_upload(body: CreateUpload) -> Response[str]:
        """Record a pending upload, then return where to PUT its bytes (or its parts)."""
        created = uploads.create(
            principal(router).owner,
            uploads.NewUpload(
                kind=body.kind,
                filename=body.filename,
                size=body.size,
                content_type=body.contentType,
                sha256=body.sha256,
                checksum_parts=body.checksumParts,
            ),
        )
        return json_response(201, created)

    @router.post(
        "/v1/uploads/<uploadId>/parts",
        responses=documented(PartsSigned, 200, "signed", 400, 401, 404, 409),
    )
    def sign_parts(upload_id: UploadId, body: SignParts) -> Response[str]:
        """Fresh part URLs (resume, expired URLs) and the parts storage already holds."""
        wanted: list[tuple[int, str | None]] = [(n, None) for n in body.partNumbers]
        wanted += [(p.partNumber, p.sha256) for p in body.parts]
        return json_response(200, uploads.sign_parts(upload_id, principal(router).owner, wanted))

    @router.post(
        "/v1/uploads/<uploadId>/complete",
        responses=documented(UploadView, 202, "verifying", 400, 401, 404, 409)
        | documented(UploadView, 200, "settled already"),
    )
    def complete_upload(
        upload_id: UploadId, body: Annotated[Complete | None, Body()] = None
    ) -> Response[str]:
        """The bytes are uploaded: complete the multipart upload (if any), then verify."""
        parts = None
        if body is not None and body.parts is not None:
            parts = [(p.partNumber, p.etag) for p in body.parts]
        view = uploads.complete(upload_id, principal(router).owner, parts)
        return json_response(202 if view["state"] == "pending" else 200, view)

    @router.get(
        "/v1/uploads/<uploadId>", responses=documented(UploadView, 200, "the upload", 401, 404)
    )
    def get_upload(upload_id: UploadId) -> Response[str]:
        return json_response(200, uploads.view(upload_id, principal(router).owner))

    return router
