"""Route: POST /v1/dev/sign-in, the local stack's development sign-in. It mints a token
for any user name, so it answers only where SLIPWAY_ENV=local (the local stack, which
serves on loopback and signs with the published development secret). Anywhere else it is
a 404 (a body it could not take is still a 400 first, as on every route), and no token:
a deployment gets its tokens from its identity provider (docs/uploads.md, "Browser
uploads")."""

from __future__ import annotations

from typing import Annotated

import jwt
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, BeforeValidator, Field, StrictInt, StrictStr

from slipway import auth
from slipway.api.http import error_response, json_response
from slipway.api.models import _integral as integral  # JSON's 2.0 is the integer 2
from slipway.api.models import documented
from slipway.config import settings
from slipway.errors import Code

DEFAULT_TTL_SECONDS = 8 * 3600
# What auth accepts as a subject: not blank, no control character (Unicode Cc).
USER = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
Seconds = Annotated[StrictInt, Field(ge=1), BeforeValidator(integral)]
Scope = Annotated[StrictStr, Field(pattern=r"^[a-z]{1,20}:[a-z]{1,20}$")]  # events:read, ...


class SignIn(BaseModel):
    user: StrictStr = Field(
        min_length=1,
        max_length=auth.MAX_SUBJECT_LENGTH,
        pattern=USER,
        description="the subject (owner) of the token",
    )
    scopes: list[Scope] = Field(default_factory=list, max_length=10)
    ttlSeconds: Seconds | None = Field(None, description="seconds; at most the token maximum")


class SignedIn(BaseModel):
    token: str
    tokenType: str = "Bearer"
    sub: str
    scopes: list[str]
    expiresAt: int = Field(description="seconds since the epoch")


def routes() -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()

    @router.post(
        "/v1/dev/sign-in", responses=documented(SignedIn, 200, "a token (local stack only)", 404)
    )
    def dev_sign_in(body: SignIn) -> Response[str]:
        """A token for any user, on the local stack only (anywhere else: 404)."""
        if settings().environment != "local":
            return error_response(404, Code.NOT_FOUND.value, "no such route")
        limit = settings().token_max_lifetime_seconds
        ttl = min(body.ttlSeconds or DEFAULT_TTL_SECONDS, limit)
        scopes = sorted(set(body.scopes))
        try:
            token = auth.issue_token(body.user, scopes, ttl_seconds=ttl)
        except ValueError as exc:
            return error_response(400, Code.BAD_REQUEST.value, f"user: {exc}")
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        signed = SignedIn(token=token, sub=body.user, scopes=scopes, expiresAt=expires)
        return json_response(200, signed.model_dump())

    return router
