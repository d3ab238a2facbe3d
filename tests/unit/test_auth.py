"""Bearer tokens and capability URLs."""

from __future__ import annotations

import time

import jwt
import pytest

from slipway import auth, config
from slipway.errors import SlipwayError

SECRET = "unit-test-secret-that-is-long-enough-0123"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_JWT_SECRET", SECRET)
    monkeypatch.delenv("SLIPWAY_URL_SECRET", raising=False)
    config.settings.cache_clear()


def event(token: str | None = None, claims: dict[str, object] | None = None) -> dict[str, object]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    context: dict[str, object] = {"authorizer": {"jwt": {"claims": claims}}} if claims else {}
    return {"headers": headers, "requestContext": context}


def test_a_valid_token_names_the_owner_and_scopes() -> None:
    who = auth.authenticate(event(auth.issue_token("alice", ["events:read", "x"])))
    assert who.owner == "alice" and who.scopes == {"events:read", "x"}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not-a-jwt",
        jwt.encode({"sub": "alice"}, "another-secret-that-is-also-long-0123", algorithm="HS256"),
        jwt.encode({"sub": "alice", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256"),
        jwt.encode({"name": "no subject"}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "alice"}, "", algorithm="none"),
    ],
)
def test_bad_tokens_are_401(bad: str | None) -> None:
    with pytest.raises(SlipwayError) as caught:
        auth.authenticate(event(bad))
    assert caught.value.status == 401


def test_claims_from_an_api_gateway_authorizer_are_trusted() -> None:
    who = auth.authenticate(event(claims={"sub": "bob", "scope": "events:read"}))
    assert who.owner == "bob" and auth.EVENTS_READ in who.scopes


def test_capabilities_are_bound_to_their_subject_and_expire() -> None:
    token = auth.capability("slide-1", 60)
    auth.check_capability("slide-1", token)
    for subject, tampered in [
        ("slide-2", token),
        ("slide-1", token[:-2] + "AA"),
        ("slide-1", "99999999999-" + token.split("-", 1)[1]),
    ]:
        with pytest.raises(SlipwayError) as caught:
            auth.check_capability(subject, tampered)
        assert caught.value.status == 404
    expired = auth.capability("slide-1", -10)
    with pytest.raises(SlipwayError) as caught:
        auth.check_capability("slide-1", expired)
    assert caught.value.status == 403
