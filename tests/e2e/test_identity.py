"""Identity rules over HTTP (contract "Identity"): a token must carry `exp`, its lifetime is
capped (24 h by default), and a `sub` that is empty, too long or holds control characters
is a 401, never a 500."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import requests

from slipway import auth
from tests.support import SECRET, token

DAY = 24 * 3600


def signed(**claims: Any) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def get_sessions(api: str, bearer: str) -> requests.Response:
    return requests.get(
        f"{api}/v1/telemetry/sessions", headers={"Authorization": f"Bearer {bearer}"}, timeout=30
    )


def now() -> int:
    return int(time.time())


class In:
    """A time `seconds` from when the test runs (not from collection: those go stale)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


def at_run(claims: dict[str, Any]) -> dict[str, Any]:
    start = now()  # one clock reading: "exactly 24 h" must not straddle a second
    return {k: start + v.seconds if isinstance(v, In) else v for k, v in claims.items()}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "alice"}, "no exp"),
        ({"sub": "alice", "iat": 0}, "no exp, with iat"),
        ({"sub": "alice", "iat": In(0), "exp": In(DAY + 60)}, "lifetime over 24 h"),
        ({"sub": "alice", "iat": In(-(10 * DAY)), "exp": In(60)}, "issued 10 days ago"),
        ({"sub": "alice", "exp": In(DAY + 60)}, "no iat: lifetime counted from now"),
        ({"sub": "", "exp": In(60)}, "empty sub"),
        ({"sub": "   ", "exp": In(60)}, "blank sub"),
        ({"sub": "a" * 257, "exp": In(60)}, "sub of 257 characters"),
        ({"sub": "ali\x00ce", "exp": In(60)}, "NUL in sub"),
        ({"sub": "ali\nce", "exp": In(60)}, "newline in sub"),
        ({"sub": "ali\x7fce", "exp": In(60)}, "DEL in sub"),
        ({"sub": "ali\x85ce", "exp": In(60)}, "C1 control in sub"),
        ({"sub": 42, "exp": In(60)}, "sub not a string"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_identity_claims_are_401(api: str, claims: dict[str, Any], reason: str) -> None:
    reply = get_sessions(api, signed(**at_run(claims)))
    assert reply.status_code == 401, (reason, reply.status_code, reply.text[:300])
    body = reply.json()
    assert set(body) == {"error"} and body["error"]["code"] == "UNAUTHORIZED", body


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a" * 256, "iat": In(0), "exp": In(60)},
        {"sub": "émilie ✓", "iat": In(0), "exp": In(DAY)},  # exactly the maximum
        {"sub": "no-iat", "exp": In(3600)},
    ],
    ids=["sub-256", "lifetime-24h", "no-iat-1h"],
)
def test_good_identity_claims_are_accepted(api: str, claims: dict[str, Any]) -> None:
    reply = get_sessions(api, signed(**at_run(claims)))
    assert reply.status_code == 200, (reply.status_code, reply.text[:300])


def test_issued_tokens_carry_exp_within_the_maximum(api: str) -> None:
    minted = token("issued")
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] <= DAY
    assert get_sessions(api, minted).status_code == 200
    with pytest.raises(ValueError, match="lifetime"):
        auth.issue_token("too-long", ttl_seconds=DAY + 1, secret=SECRET)
