"""Routes: the upload page (GET /v1/upload) and its files. The page needs no token to load;
its script calls this API with the token the user supplies (docs/uploads.md, "Browser
uploads"), and sends the bytes straight to storage through pre-signed URLs."""

from __future__ import annotations

import logging
import os
import re
from importlib import resources
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from slipway import errors
from slipway.api.models import media
from slipway.config import settings

log = logging.getLogger(__name__)
# Origins of applications that may embed the page and hand it a token by postMessage
# (space- or comma-separated); none by default, and then no site may frame it.
EMBED_ORIGINS_ENV = "SLIPWAY_UPLOAD_PAGE_EMBED_ORIGINS"
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".map": "application/json"}
_FILES = media(200, "a file of the upload page", *sorted(set(_TYPES.values())))


def embed_origins() -> list[str]:
    """The configured origins; anything that is not a plain origin is left out (logged)."""
    found = []
    for origin in re.split(r"[\s,]+", os.environ.get(EMBED_ORIGINS_ENV, "")):
        if origin and _ORIGIN.match(origin.rstrip("/")):
            found.append(origin.rstrip("/"))
        elif origin:
            log.warning("%s: %r is not an origin; left out", EMBED_ORIGINS_ENV, origin[:100])
    return found


def page() -> tuple[str, dict[str, str]]:
    """The page and its headers: only its own files run, and its requests go to this API
    and to storage's pre-signed URLs (another origin: http on the local stack)."""
    local = settings().environment == "local"
    origins = embed_origins()
    html = resources.files("slipway").joinpath("static", "upload.html").read_text()
    html = html.replace("{{ENVIRONMENT}}", "local" if local else "")
    html = html.replace("{{EMBED_ORIGINS}}", " ".join(origins))
    storage = "http: https:" if local else "https:"
    ancestors = " ".join(origins) or "'none'"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {storage}; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return html, headers


def _file(folder: str, name: str) -> Response[bytes]:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in _TYPES or not _NAME.match(name):
        raise errors.not_found("file")
    path = resources.files("slipway").joinpath("static", folder, name)
    if not path.is_file():
        raise errors.not_found("file")
    return Response(
        200,
        _TYPES[suffix],
        path.read_bytes(),
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.get("/v1/upload", responses=media(200, "the upload page", "text/html"))
    def get_upload_page() -> Response[str]:
        """Drag and drop slides and telemetry; resumable multipart; processing status."""
        html, headers = page()
        return Response(200, "text/html; charset=utf-8", html, headers=headers)

    # Binary-safe bodies: unannotated returns (see slides._asset).
    @router.get("/v1/static/upload/<name>", responses=_FILES)
    def get_upload_file(name: Annotated[str, Path()]):  # type: ignore[no-untyped-def]
        """The page's own script and style."""
        return _file("upload", name)

    @router.get("/v1/static/uppy/<name>", responses=_FILES)
    def get_uppy_file(name: Annotated[str, Path()]):  # type: ignore[no-untyped-def]
        """Uppy (core and the S3 multipart uploader), bundled from npm by the Makefile."""
        return _file("uppy", name)

    return router
