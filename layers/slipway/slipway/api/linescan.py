"""Routes: /v1/line-scans (DB-first tile uploads)."""

from __future__ import annotations

import base64
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import linescan
from slipway.api.http import json_response, principal
from slipway.api.models import LineScan, LineScanTile, documented

ScanId = Annotated[UUID, Path(alias="scanId")]
TileId = Annotated[UUID, Path(alias="tileId")]


def _body_bytes(router: APIGatewayHttpRouter) -> bytes:
    event = router.current_event
    raw = event.get("body") or ""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("latin-1")


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.put(
        "/v1/line-scans/<scanId>/tiles/<tileId>",
        responses=documented(LineScanTile, 200, "stored", 400, 401, 404, 409, 413, 503),
    )
    def put_tile(scan_id: ScanId, tile_id: TileId) -> Response[str]:
        """Store one tile's bytes (the body, up to 5 MiB); repeating it is safe."""
        return json_response(
            200, linescan.put_tile(principal(router).owner, scan_id, tile_id, _body_bytes(router))
        )

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
