"""Named SQL blocks: each concept's queries live in `slipway/sql/<concept>.sql`.

A block starts with a `-- name: <name>` line and runs to the next one; parameters are
psycopg's `%(name)s` placeholders (server-side binding, never string formatting).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString, cast

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def load(concept: str) -> dict[str, LiteralString]:
    text = resources.files("slipway").joinpath("sql", f"{concept}.sql").read_text()
    parts = _NAME.split(text)
    blocks = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    if not blocks:
        raise ValueError(f"no named queries in sql/{concept}.sql")
    return cast(dict[str, LiteralString], blocks)
