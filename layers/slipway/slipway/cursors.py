"""Opaque page cursors for lists ordered newest first by (created_at, id): the API hands
one out as `next`, and takes back only what it handed out (anything else is a 400)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import UUID

from slipway import errors


def encode(created_at: datetime, item_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode(cursor: str | None) -> tuple[datetime | None, UUID | None]:
    """The (created_at, id) a cursor names, (None, None) for the first page; 400 for any
    other text (including times Postgres could not hold)."""
    if not cursor:
        return None, None
    try:
        created_text, id_text = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            raise ValueError("a cursor's time has an offset")
        return created.astimezone(UTC), UUID(id_text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise errors.bad_request("cursor is not one this API returned") from exc
