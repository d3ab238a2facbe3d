"""Current-state tables as projections of the event log.

`record` is the only way state changes: it appends each event to the log and applies it
to the live tables, inside the caller's transaction.
"""

from __future__ import annotations

from slipway.db import Connection
from slipway.events import Event, NewEvent, append
from slipway.projections.projectors import ProjectionError, apply
from slipway.projections.store import TABLES, DbStore, MemoryStore

__all__ = ["TABLES", "DbStore", "MemoryStore", "ProjectionError", "apply", "record"]


def record(conn: Connection, actor: str, *new_events: NewEvent) -> list[Event]:
    store = DbStore(conn)
    recorded = []
    for new in new_events:
        event = append(conn, actor, new)
        apply(store, event)
        recorded.append(event)
    return recorded
