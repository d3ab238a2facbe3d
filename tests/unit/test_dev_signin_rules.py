"""The development sign-in's request schema states exactly the subjects auth accepts, so
a request the OpenAPI document allows is never refused (and none it forbids is taken)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from slipway import auth
from slipway.api.dev_signin import USER, SignIn
from slipway.errors import SlipwayError


def accepted_by_the_route(subject: str) -> bool:
    try:
        SignIn.model_validate({"user": subject})
    except ValidationError:
        return False
    return True


def accepted_by_auth(subject: str) -> bool:
    try:
        auth._subject(subject)
    except SlipwayError:
        return False
    return True


# The pattern as OpenAPI (ECMA-262) and pydantic read it: `$` is the end of the text. In
# Python's `re` it also matches before a final newline, so it is spelled `\Z` here.
DOCUMENTED_USER = re.compile(USER.removesuffix("$") + r"\Z")


@given(
    st.text(max_size=300)
    | st.sampled_from(["", " ", "\u2028", "a\u0085", "\u00a0x", "é", "0\n", "a\r\n"])
)
def test_the_user_pattern_is_the_subject_rule(subject: str) -> None:
    allowed = DOCUMENTED_USER.search(subject) is not None
    allowed = allowed and len(subject) <= auth.MAX_SUBJECT_LENGTH
    assert allowed == accepted_by_auth(subject), repr(subject)
    assert allowed == accepted_by_the_route(subject), repr(subject)
