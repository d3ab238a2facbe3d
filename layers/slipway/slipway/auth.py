"""Identity: who is calling, and URLs that carry their own short-lived permission.

On AWS an API Gateway JWT authorizer verifies the token and passes its claims in the
event; locally (or behind a gateway without an authorizer) the function verifies the
HS256 token itself with SLIPWAY_JWT_SECRET. Either way the `sub` claim is the owner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from slipway.config import settings
from slipway.errors import Code, SlipwayError

EVENTS_READ = "events:read"


@dataclass(frozen=True)
class Principal:
    owner: str
    scopes: frozenset[str]


def unauthorized(message: str) -> SlipwayError:
    return SlipwayError(Code.UNAUTHORIZED, message, status=401)


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return frozenset()


def from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise unauthorized("the token has no subject (sub claim)")
    return Principal(sub, _scopes(claims.get("scope")) | _scopes(claims.get("scp")))


def _secret() -> str:
    secret = settings().jwt_secret
    if not secret:
        raise unauthorized("this deployment verifies no tokens (SLIPWAY_JWT_SECRET unset)")
    return secret


def verify_token(token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            _secret(),
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["sub"]},
        )
    except jwt.PyJWTError as exc:
        raise unauthorized(f"invalid token: {exc}") from exc
    return from_claims(claims)


def authenticate(event: Mapping[str, Any]) -> Principal:
    """The caller of an API Gateway (HTTP API, payload 2.0) event, or a 401."""
    claims = event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims")
    if claims:
        return from_claims(claims)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send Authorization: Bearer <token>")
    return verify_token(token.strip())


def issue_token(
    sub: str, scopes: Iterable[str] = (), ttl_seconds: int = 24 * 3600, secret: str | None = None
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jwt.encode(claims, secret or _secret(), algorithm="HS256")


# capability URLs -------------------------------------------------------------------------
# A DZI descriptor's tiles are fetched by relative URL (OpenSeadragon, plain clients), so
# the permission travels in the path: /…/{expiry}-{hmac}/… signed for one subject.


def _url_key() -> bytes:
    secret = os.environ.get("SLIPWAY_URL_SECRET") or _secret()
    return hashlib.sha256(b"slipway-url-capability\0" + secret.encode()).digest()


def _mac(subject: str, expires: int) -> str:
    digest = hmac.new(_url_key(), f"{subject}\0{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def capability(subject: str, ttl_seconds: int) -> str:
    expires = int(time.time()) + ttl_seconds
    return f"{expires}-{_mac(subject, expires)}"


def check_capability(subject: str, token: str) -> None:
    expires_text, _, mac = token.partition("-")
    if not expires_text.isdigit() or not hmac.compare_digest(mac, _mac(subject, int(expires_text))):
        raise SlipwayError(Code.NOT_FOUND, "not found", status=404)
    if int(expires_text) < time.time():
        raise SlipwayError(
            Code.FORBIDDEN, "this link has expired; ask the API for a new one", status=403
        )
