"""The development sign-in's request schema states exactly the subjects auth accepts, so
a request the OpenAPI document allows is never refused (and none it forbids is taken)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from slipway import auth
from slipway.api.dev_signin import USER
from slipway.errors import SlipwayError


def accepted_by_auth(subject: str) -> bool:
    try:
        auth._subject(subject)
    except SlipwayError:
        return False
    return True


@given(st.text(max_size=300) | st.sampled_from(["", " ", "\u2028", "a\u0085", "\u00a0x", "é"]))
def test_the_user_pattern_is_the_subject_rule(subject: str) -> None:
    allowed = re.search(USER, subject) is not None and len(subject) <= auth.MAX_SUBJECT_LENGTH
    assert allowed == accepted_by_auth(subject), repr(subject)
