"""Bearer tokens and capability URLs."""

from __future__ import annotations

import time
from collections.abc import Callable

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
        jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"sub": "alice", "exp": "tomorrow"}, SECRET, algorithm="HS256"),
        # (long-lived: made at collection, they must fail for their sub, not for expiry)
        jwt.encode({"sub": "", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "a\tb", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256"),
    ],
)
def test_bad_tokens_are_401(bad: str | None) -> None:
    with pytest.raises(SlipwayError) as caught:
        auth.authenticate(event(bad))
    assert caught.value.status == 401


def test_claims_from_an_api_gateway_authorizer_are_trusted() -> None:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "bob",
        "scope": "events:read",
        "iat": str(now),
        "exp": str(now + 60),
    }
    who = auth.authenticate(event(claims=claims))
    assert who.owner == "bob" and auth.EVENTS_READ in who.scopes


DAY = 24 * 3600


@pytest.mark.parametrize(
    "claims_at",
    [
        lambda now: {"sub": "bob"},  # no exp
        lambda now: {"sub": "bob", "iat": "0", "exp": str(DAY + 1)},  # lifetime over the maximum
        lambda now: {"sub": "bob", "exp": str(now + DAY + 120)},  # no iat: from now
        # an iat in the future does not stretch the lifetime
        lambda now: {"sub": "bob", "iat": str(now + 9 * DAY), "exp": str(now + 10 * DAY)},
        lambda now: {"sub": "bob", "iat": "soon", "exp": str(now + 60)},
        lambda now: {"sub": "bob", "exp": "nan"},
        lambda now: {"sub": "bob", "exp": True},
        lambda now: {"sub": "b\x00b", "exp": str(now + 60)},
        lambda now: {"sub": "b" * 257, "exp": str(now + 60)},
    ],
)
def test_authorizer_claims_follow_the_same_rules(
    claims_at: Callable[[int], dict[str, object]],
) -> None:
    """(The claims are made when the test runs: times fixed at collection would go stale.)"""
    with pytest.raises(SlipwayError) as caught:
        auth.authenticate(event(claims=claims_at(int(time.time()))))
    assert caught.value.status == 401


def test_the_maximum_lifetime_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_TOKEN_MAX_LIFETIME_SECONDS", "3600")
    config.settings.cache_clear()
    now = int(time.time())
    ok = jwt.encode({"sub": "a", "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")
    assert auth.authenticate(event(ok)).owner == "a"
    long = jwt.encode({"sub": "a", "iat": now, "exp": now + 3601}, SECRET, algorithm="HS256")
    with pytest.raises(SlipwayError, match="lifetime"):
        auth.authenticate(event(long))
    issued = jwt.decode(auth.issue_token("a"), SECRET, algorithms=["HS256"])
    assert issued["exp"] - issued["iat"] == 3600
    with pytest.raises(ValueError, match="lifetime"):
        auth.issue_token("a", ttl_seconds=3601)


@pytest.mark.parametrize("sub", ["", "x" * 257, "a\x00b"])
def test_tokens_are_never_issued_for_a_bad_subject(sub: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        auth.issue_token(sub)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SLIPWAY_JWT_SECRET": auth.LOCAL_DEVELOPMENT_SECRET}, "published"),
        ({"SLIPWAY_JWT_SECRET": "é" * 15 + "x"}, "shorter than 32 bytes"),  # 31 bytes
        ({"SLIPWAY_URL_SECRET": auth.LOCAL_DEVELOPMENT_SECRET}, "published"),
        ({"SLIPWAY_URL_SECRET": "k3y-of-17-bytes.."}, "shorter than 32 bytes"),
    ],
)
def test_weak_secrets_are_refused_outside_the_local_stack(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    monkeypatch.delenv("SLIPWAY_ENV", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config.settings.cache_clear()
    with pytest.raises(auth.InsecureSecret, match=problem) as caught:
        auth.check_secrets()
    assert all(value not in str(caught.value) for value in env.values())
    monkeypatch.setenv("SLIPWAY_ENV", "local")
    config.settings.cache_clear()
    auth.check_secrets()  # the local stack may


def test_a_strong_secret_or_none_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_ENV", raising=False)
    auth.check_secrets()  # SECRET: 41 bytes
    monkeypatch.setenv("SLIPWAY_JWT_SECRET", "é" * 16)  # 32 bytes
    config.settings.cache_clear()
    auth.check_secrets()
    monkeypatch.delenv("SLIPWAY_JWT_SECRET")
    config.settings.cache_clear()
    auth.check_secrets()  # nothing to verify with: every request is a 401 instead


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
