"""Routes: /v1/slides — status, the Deep Zoom pyramid, its IIIF Image API 3.0 view, the
associated images, and the viewer page."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import errors, slides
from slipway.api.http import base_url, json_response, principal
from slipway.api.models import IiifInfo, SlideView, documented, failures, media

UploadId = Annotated[UUID, Path(alias="uploadId")]
# A capability token (auth.capability): characters a URL carries unescaped only.
Token = Annotated[str, Path(alias="token", pattern=r"^[A-Za-z0-9._~-]{1,100}$")]
_ASSET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_TILE = re.compile(r"^\d{1,7}_\d{1,7}\.(jpeg|jpg|png|webp)$")
# IIIF image request segments at level 0 (beyond it, 400 as the spec says); slides.py
# checks them again, after the capability. The path arrives undecoded: "," or "%2C".
_N, _C = r"\d{1,9}", r"(,|%2[Cc])"
Region = Annotated[str, Path(pattern=rf"^(full|{_N}{_C}{_N}{_C}{_N}{_C}{_N})$")]
Size = Annotated[str, Path(pattern=rf"^(max|{_N}{_C}\d{{0,9}})$")]
Rotation = Annotated[str, Path(pattern=r"^0$")]
Quality = Annotated[str, Path(pattern=r"^default\.jpg$")]
Associated = Annotated[str, Path(alias="name", pattern=r"^(label|macro|thumbnail)$")]
_TILE_CACHE = {"Cache-Control": "private, max-age=86400"}


_STATIC_TYPES = {".js": "text/javascript", ".png": "image/png", ".map": "application/json"}
_ASSET_REPLIES = media(200, "a file of the viewer", *sorted(set(_STATIC_TYPES.values())))


# Binary bodies: Powertools' response validation would serialize them as UTF-8 text, so
# the routes that return them leave their return type unannotated (it skips them then).
def _asset(folder: str, name: str) -> Response[bytes]:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in _STATIC_TYPES or not _ASSET_NAME.fullmatch(name):
        raise errors.not_found("asset")
    path = resources.files("slipway").joinpath("static", *folder.split("/"), name)
    if not path.is_file():
        raise errors.not_found("asset")
    return Response(
        200,
        _STATIC_TYPES[suffix],
        path.read_bytes(),
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _tile_response(found: slides.Tile, kind: str) -> Response[bytes] | Response[str]:
    if found.data is not None:
        return Response(200, kind, found.data, headers=_TILE_CACHE)
    return Response(
        302,
        "text/plain",
        "",
        headers={"Location": found.redirect or "", "Cache-Control": "private, max-age=300"},
    )


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get(
        "/v1/slides/<uploadId>", responses=documented(SlideView, 200, "the slide", 401, 404)
    )
    def get_slide(upload_id: UploadId) -> Response[str]:
        return json_response(200, slides.view(upload_id, principal(router).owner, base_url(router)))

    @router.get(
        "/v1/slides/<uploadId>/dzi/<token>/slide.dzi",
        responses=media(200, "the Deep Zoom descriptor (XML)", "application/xml") | failures(403),
    )
    def get_dzi(upload_id: UploadId, token: Token) -> Response[str]:
        """The Deep Zoom descriptor (XML); the link itself carries the permission."""
        return Response(
            200,
            "application/xml",
            slides.dzi_descriptor(upload_id, token).decode(),
            headers={"Cache-Control": "private, max-age=300"},
        )

    @router.get(
        "/v1/slides/<uploadId>/dzi/<token>/slide_files/<level>/<tile>",
        responses=media(200, "the tile", "image/jpeg", "image/png", "image/webp")
        | media(302, "the tile at a short-lived URL of its object", "text/plain")
        | failures(403),
    )
    def get_tile(  # type: ignore[no-untyped-def]
        upload_id: UploadId,
        token: Token,
        level: Annotated[int, Path(ge=0, le=64)],
        tile: Annotated[str, Path()],
    ):
        """One tile: its bytes (read from the slide's archive), or a redirect to a
        short-lived URL of its object. Unannotated: a binary body (see _asset)."""
        if not _TILE.match(tile):
            raise errors.not_found("tile")
        found = slides.tile(upload_id, token, level, tile)
        kind = "image/jpeg" if tile.endswith((".jpeg", ".jpg")) else f"image/{tile[-4:]}"
        return _tile_response(found, kind)

    @router.get(
        "/v1/slides/<uploadId>/iiif/<token>",
        responses=media(303, "see the image information document", "text/plain") | failures(403),
    )
    def get_iiif_service(upload_id: UploadId, token: Token) -> Response[str]:
        """The IIIF service's base URI redirects to its info.json (IIIF Image API 3.0 §2.2)."""
        url = f"{base_url(router)}/v1/slides/{upload_id}/iiif/{token}"
        slides.iiif_info(upload_id, token, url)  # 404/403 like info.json itself
        return Response(303, "text/plain", "", headers={"Location": f"{url}/info.json"})

    @router.get(
        "/v1/slides/<uploadId>/iiif/<token>/info.json",
        responses=documented(IiifInfo, 200, "the IIIF image information document", 403),
    )
    def get_iiif_info(upload_id: UploadId, token: Token) -> Response[str]:
        """IIIF Image API 3.0 info.json (level 0): the tiles and sizes this service serves."""
        url = f"{base_url(router)}/v1/slides/{upload_id}/iiif/{token}"
        response = json_response(200, slides.iiif_info(upload_id, token, url))
        response.headers["Cache-Control"] = "private, max-age=300"
        return response

    @router.get(
        "/v1/slides/<uploadId>/iiif/<token>/<region>/<size>/<rotation>/<quality>",
        responses=media(200, "the IIIF tile", "image/jpeg")
        | media(302, "the tile at a short-lived URL of its object", "text/plain")
        | failures(400, 403),
    )
    def get_iiif_tile(  # type: ignore[no-untyped-def]
        upload_id: UploadId,
        token: Token,
        region: Region,
        size: Size,
        rotation: Rotation,
        quality: Quality,
    ):
        """A IIIF image request for one of the listed tiles or sizes: the DZI tile that
        holds exactly those pixels. Unannotated: a binary body (see _asset)."""
        found = slides.iiif_tile(upload_id, token, region, size, rotation, quality)
        return _tile_response(found, "image/jpeg")

    @router.get(
        "/v1/slides/<uploadId>/associated/<token>/<name>",
        responses=media(200, "the associated image", "image/jpeg", "image/png") | failures(403),
    )
    def get_associated(  # type: ignore[no-untyped-def]
        upload_id: UploadId, token: Token, name: Associated
    ):
        """An associated image the file holds (label, macro, thumbnail). A label may show a
        patient's name: its link is the owner's, like the slide's. Unannotated: binary."""
        image = slides.associated_image(upload_id, token, name)
        return Response(200, image.media_type, image.data, headers=_TILE_CACHE)

    @router.get(
        "/v1/slides/<uploadId>/viewer/<token>",
        responses=media(200, "the viewer page", "text/html") | failures(403),
    )
    def get_viewer(upload_id: UploadId, token: Token) -> Response[str]:
        """A zoomable view of the slide (OpenSeadragon), with what the file says about it."""
        facts = slides.viewer_facts(upload_id, token)  # 404/403 before rendering a dead page
        # as a JS literal inside <script>: no "</script>" or "<!--" can come out of a filename
        literal = json.dumps(facts)
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            literal = literal.replace(char, escaped)
        page = resources.files("slipway").joinpath("static", "viewer.html").read_text()
        page = page.replace("{{DZI_URL}}", f"../dzi/{token}/slide.dzi")
        page = page.replace("{{TITLE}}", f"Slide {upload_id}")
        page = page.replace("{{FACTS}}", literal)
        return Response(200, "text/html; charset=utf-8", page)

    @router.get("/v1/static/openseadragon/<asset>", responses=_ASSET_REPLIES)
    def get_viewer_asset(asset: Annotated[str, Path()]):  # type: ignore[no-untyped-def]
        return _asset("openseadragon", asset)

    @router.get("/v1/static/openseadragon/images/<asset>", responses=_ASSET_REPLIES)
    def get_viewer_image(asset: Annotated[str, Path()]):  # type: ignore[no-untyped-def]
        return _asset("openseadragon/images", asset)

    return router
