"""Identity: who is calling, and URLs that carry their own short-lived permission.

On AWS an API Gateway JWT authorizer verifies the token and passes its claims in the
event; locally (or behind a gateway without an authorizer) the function verifies the
HS256 token itself with SLIPWAY_JWT_SECRET. Either way the `sub` claim is the owner, and
the same rules hold: a token carries `exp`, lives at most the configured maximum, and
names a plain subject (1 to 256 characters, no control characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from slipway.config import settings
from slipway.errors import Code, SlipwayError

EVENTS_READ = "events:read"
OPS_READ = "ops:read"  # the operator's figures and any owner's job (docs/operations.md)
OPS_WRITE = "ops:write"  # retry any owner's job
# The local stack's default secret: published in the README, so accepted only there.
LOCAL_DEVELOPMENT_SECRET = "slipway-local-development-secret-not-for-production"  # noqa: S105
MIN_SECRET_BYTES = 32
MAX_SUBJECT_LENGTH = 256
CLOCK_SKEW_SECONDS = 60  # how far in the future an authorizer's `iat` may be


@dataclass(frozen=True)
class Principal:
    owner: str
    scopes: frozenset[str]


class InsecureSecret(RuntimeError):
    """A secret anyone can know or guess, outside the local stack: refuse to start."""


def unauthorized(message: str) -> SlipwayError:
    return SlipwayError(Code.UNAUTHORIZED, message, status=401)


def require_scope(principal: Principal, scope: str) -> None:
    """A known caller without the scope a route needs: 403 (the route is not theirs)."""
    if scope not in principal.scopes:
        raise SlipwayError(Code.FORBIDDEN, f"the token lacks the {scope} scope", status=403)


def check_secrets() -> None:
    """Raise InsecureSecret unless every configured secret is fit for a deployment.

    Functions call this as they start (slipway.api.http.resolver). The local stack sets
    SLIPWAY_ENV=local and may use the published development secret; nothing else may.
    """
    if settings().environment == "local":
        return
    for name, value in (
        ("SLIPWAY_JWT_SECRET", settings().jwt_secret),
        ("SLIPWAY_URL_SECRET", os.environ.get("SLIPWAY_URL_SECRET")),
    ):
        if value == LOCAL_DEVELOPMENT_SECRET:
            raise InsecureSecret(
                f"{name} is the published local development secret; set a random one "
                "(docs/deploy.md, Secrets)"
            )
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            raise InsecureSecret(
                f"{name} is shorter than {MIN_SECRET_BYTES} bytes; set a random one "
                "(docs/deploy.md, Secrets)"
            )


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return frozenset()


def _subject(sub: Any) -> str:
    if not isinstance(sub, str) or not sub.strip():
        raise unauthorized("the token has no subject (sub claim)")
    if len(sub) > MAX_SUBJECT_LENGTH:
        raise unauthorized(f"the token's subject is longer than {MAX_SUBJECT_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in sub):
        raise unauthorized("the token's subject holds control characters")
    return sub


def _seconds(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim; an authorizer passes claims as strings, so read those too."""
    value = claims.get(name)
    if value is None:
        return None
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise unauthorized(f"the token's {name} claim is not a time")
    return number


def _check_lifetime(claims: Mapping[str, Any]) -> None:
    """`exp` is required and `exp - iat` capped; without `iat` (or with one in the
    future) the lifetime counts from now, so no token outlives the cap from today."""
    expires = _seconds(claims, "exp")
    if expires is None:
        raise unauthorized("the token has no expiry (exp claim)")
    now = time.time()
    issued = _seconds(claims, "iat")
    start = issued if issued is not None and issued <= now + CLOCK_SKEW_SECONDS else now
    limit = settings().token_max_lifetime_seconds
    if expires - start > limit:
        raise unauthorized(f"the token's lifetime exceeds the maximum of {limit} s")


def from_claims(claims: Mapping[str, Any]) -> Principal:
    """The caller named by verified claims (ours, or an API Gateway authorizer's)."""
    owner = _subject(claims.get("sub"))
    _check_lifetime(claims)
    return Principal(owner, _scopes(claims.get("scope")) | _scopes(claims.get("scp")))


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
            options={"verify_aud": False, "require": ["sub", "exp"]},
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
    sub: str, scopes: Iterable[str] = (), ttl_seconds: int | None = None, secret: str | None = None
) -> str:
    """A signed token valid for `ttl_seconds` (default and most: the configured maximum)."""
    limit = settings().token_max_lifetime_seconds
    ttl = limit if ttl_seconds is None else ttl_seconds
    if not 0 < ttl <= limit:
        raise ValueError(f"a token's lifetime must be between 1 and {limit} s")
    try:
        _subject(sub)
    except SlipwayError as exc:
        raise ValueError(exc.message) from None
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl}
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
