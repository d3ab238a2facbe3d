"""The development sign-in mints tokens on the local stack only. Each case starts a real
ApiFunction instance the way the local Lambda runtime does (its own process, the
template's environment; no database or storage needed) and sends it the event API
Gateway would: outside SLIPWAY_ENV=local the route is a 404 and no token comes out."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest

from slipway_local.gateway import build_event
from slipway_local.runtime import Instance
from slipway_local.stack import ROOT, STACK_NAME
from slipway_local.template import Route, Template
from tests.support import SECRET


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(
        ROOT / "template.yaml",
        STACK_NAME,
        {"DatabaseUrl": "postgresql://nobody@127.0.0.1:1/none", "JwtSecret": SECRET},
        "http://127.0.0.1:1",
    )


@contextmanager
def instance(template: Template, **env: str) -> Iterator[Instance]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_"))}
    running = Instance(template.functions()["ApiFunction"], base | env)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def local(template: Template) -> Iterator[Instance]:
    """One instance as the local stack runs it (SLIPWAY_ENV=local), for the local cases."""
    with instance(template, SLIPWAY_ENV="local") as running:
        yield running


def sign_in(running: Instance, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    route = Route("POST", "/v1/dev/sign-in", "ApiFunction")
    event = build_event(
        route,
        {},
        "POST",
        "/v1/dev/sign-in",
        {"content-type": "application/json", "host": "127.0.0.1"},
        json.dumps(body).encode(),
        "127.0.0.1",
    )
    reply = running.invoke(event, 30)
    return int(reply["statusCode"]), json.loads(reply["body"])


def test_the_template_deploys_the_route_to_the_api_function(template: Template) -> None:
    assert "POST /v1/dev/sign-in" in {
        r.key for r in template.routes() if r.function == "ApiFunction"
    }


@pytest.mark.parametrize("environment", ["", "production", "LOCAL", "local "])
def test_outside_the_local_stack_no_token_is_minted(template: Template, environment: str) -> None:
    env = {"SLIPWAY_ENV": environment} if environment else {}
    with instance(template, **env) as running:
        status, body = sign_in(running, {"user": "mallory", "scopes": ["ops:read"]})
        assert status == 404, body
        assert body == {"error": {"code": "NOT_FOUND", "message": "no such route"}}


def test_on_the_local_stack_it_mints_a_token_the_api_accepts(local: Instance) -> None:
    status, body = sign_in(local, {"user": "hana", "scopes": ["events:read"]})
    assert status == 200, body
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "hana" and claims["scope"] == "events:read"
    assert claims["exp"] - claims["iat"] == 8 * 3600 == body["expiresAt"] - claims["iat"]
    assert body["tokenType"] == "Bearer" and body["sub"] == "hana"

    status, body = sign_in(local, {"user": "hana", "ttlSeconds": 10**9})
    assert status == 200
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 24 * 3600, "capped at the token maximum"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user": ""},
        {"user": "a\u0007b"},
        {"user": "x" * 257},
        {"user": "hana", "scopes": ["not a scope"]},
        {"user": "hana", "scopes": "events:read"},
        {"user": "hana", "ttlSeconds": 0},
        {"user": 7},
    ],
)
def test_bad_requests_are_400s(local: Instance, body: dict[str, Any]) -> None:
    status, reply = sign_in(local, body)
    assert status == 400, reply
    assert reply["error"]["code"] == "BAD_REQUEST"
