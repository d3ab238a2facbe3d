"""Routes: /v1/line-scans (DB-first tile uploads: inline PUTs, and pre-signed PUTs for
tiles above the inline limit)."""

from __future__ import annotations

import base64
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field, StrictStr

from slipway import linescan
from slipway.api.http import json_response, principal
from slipway.api.models import JsonInt, LineScan, LineScanTile, documented

ScanId = Annotated[UUID, Path(alias="scanId")]
TileId = Annotated[UUID, Path(alias="tileId")]
Sha256 = Annotated[
    StrictStr, Field(pattern="^[0-9a-fA-F]{64}$", description="hex SHA-256 of the tile's bytes")
]


class TileUploadWanted(BaseModel):
    size: JsonInt = Field(  # an oversize size is a bad request (400), as for uploads
        ge=1, le=linescan.MAX_TILE_BYTES, description="the tile's length in bytes (at most 5 MiB)"
    )
    sha256: Sha256


class TileUploaded(BaseModel):
    sha256: Sha256


class SignedPut(BaseModel):
    method: str
    url: str
    headers: dict[str, str]
    expiresAt: str


class TileUpload(LineScanTile):
    upload: SignedPut | None = Field(
        description="where to PUT the bytes; null when the tile is already ready with them"
    )


def _body_bytes(router: APIGatewayHttpRouter) -> bytes:
    """The request body byte for byte. API Gateway sends a binary body base64-encoded and
    a text one as the string it decoded as UTF-8; encoding it back gives the bytes sent."""
    event = router.current_event
    raw = event.get("body") or ""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")


def _content_type(router: APIGatewayHttpRouter) -> str | None:
    headers = router.current_event.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == "content-type"), None)


_BYTES = {"schema": {"type": "string", "format": "binary", "minLength": 1}}
# The PUT's body is the tile itself (the route reads it raw, so it is declared here)
_TILE_BODY = {"required": True, "content": {"application/octet-stream": _BYTES, "image/*": _BYTES}}


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.put(
        "/v1/line-scans/<scanId>/tiles/<tileId>",
        responses=documented(LineScanTile, 200, "stored", 400, 401, 404, 409, 413, 415, 503),
        openapi_extensions={"requestBody": _TILE_BODY},
    )
    def put_tile(scan_id: ScanId, tile_id: TileId) -> Response[str]:
        """Store one tile's bytes (the body, up to 5 MiB); repeating it is safe."""
        linescan.check_media_type(_content_type(router))
        return json_response(
            200, linescan.put_tile(principal(router).owner, scan_id, tile_id, _body_bytes(router))
        )

    @router.post(
        "/v1/line-scans/<scanId>/tiles/<tileId>/upload",
        responses=documented(TileUpload, 200, "pending, and where to PUT", 400, 401, 404, 409, 413),
    )
    def sign_upload(scan_id: ScanId, tile_id: TileId, body: TileUploadWanted) -> Response[str]:
        """Record the tile `pending`, then return a pre-signed PUT (length and SHA-256
        signed) for its bytes: for tiles above the inline limit. Repeating it is safe."""
        signed = linescan.sign_upload(
            principal(router).owner, scan_id, tile_id, body.size, bytes.fromhex(body.sha256)
        )
        return json_response(200, signed)

    @router.post(
        "/v1/line-scans/<scanId>/tiles/<tileId>/complete",
        responses=documented(LineScanTile, 200, "ready", 400, 401, 404, 409, 503),
    )
    def complete_upload(scan_id: ScanId, tile_id: TileId, body: TileUploaded) -> Response[str]:
        """The bytes were PUT to the signed URL: verify their SHA-256 in storage, `ready`."""
        done = linescan.complete_upload(
            principal(router).owner, scan_id, tile_id, bytes.fromhex(body.sha256)
        )
        return json_response(200, done)

    @router.get("/v1/line-scans/<scanId>/tiles/<tileId>")
    def get_tile(scan_id: ScanId, tile_id: TileId):  # type: ignore[no-untyped-def]
        """The tile's bytes, only once it is `ready` (else 409 with its state).

        Unannotated on purpose: a binary body (see api/slides.py)."""
        data = linescan.get_tile(principal(router).owner, scan_id, tile_id)
        return Response(200, "application/octet-stream", data)

    @router.get(
        "/v1/line-scans/<scanId>", responses=documented(LineScan, 200, "the scan", 401, 404)
    )
    def get_scan(scan_id: ScanId) -> Response[str]:
        return json_response(200, linescan.list_scan(principal(router).owner, scan_id))

    return router
