"""End-to-end tests act as a client of the running stack, over HTTP only."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _running_stack(stack: dict[str, str]) -> dict[str, str]:
    return stack
