"""Outside the local stack a function refuses to start with the published local secret or
one shorter than 32 bytes (contract "Identity"). Each case starts a real function instance
the way the local Lambda runtime does (its own process, the template's environment)."""

from __future__ import annotations

import os

import pytest

from slipway import auth
from slipway_local.runtime import FunctionError, Instance
from slipway_local.stack import LOCAL_JWT_SECRET, ROOT, STACK_NAME
from slipway_local.template import Template
from tests.support import SECRET

SHORT = "x" * 31


def start(function: str, secret: str, **env: str) -> None:
    """Start (and stop) one instance of `function` with this secret and environment."""
    template = Template(
        ROOT / "template.yaml",
        STACK_NAME,
        {"DatabaseUrl": "postgresql://nobody@127.0.0.1:1/none", "JwtSecret": secret},
        "http://127.0.0.1:1",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_"))}
    Instance(template.functions()[function], base | env).close()


def test_the_library_names_the_published_secret() -> None:
    assert auth.LOCAL_DEVELOPMENT_SECRET == LOCAL_JWT_SECRET


@pytest.mark.parametrize("secret", [LOCAL_JWT_SECRET, SHORT], ids=["published", "short"])
@pytest.mark.parametrize("function", ["ApiFunction", "PresignFunction"])
def test_a_function_outside_the_local_stack_refuses_a_weak_secret(
    function: str, secret: str
) -> None:
    with pytest.raises(FunctionError) as caught:
        start(function, secret)
    assert caught.value.kind == "InitError"
    assert "SLIPWAY_JWT_SECRET" in str(caught.value)
    assert secret not in str(caught.value), "the message must not reveal the secret"


def test_a_weak_url_secret_is_refused_too() -> None:
    with pytest.raises(FunctionError, match="SLIPWAY_URL_SECRET"):
        start("ApiFunction", SECRET, SLIPWAY_URL_SECRET=SHORT)


@pytest.mark.parametrize(
    ("secret", "env"),
    [(SECRET, {}), (LOCAL_JWT_SECRET, {"SLIPWAY_ENV": "local"}), (SHORT, {"SLIPWAY_ENV": "local"})],
    ids=["strong", "published-locally", "short-locally"],
)
def test_a_strong_secret_or_the_local_stack_starts(secret: str, env: dict[str, str]) -> None:
    start("ApiFunction", secret, **env)
