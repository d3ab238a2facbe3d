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


def record(
    conn: Connection, actor: str, *new_events: NewEvent, store: DbStore | None = None
) -> list[Event]:
    """Append the events and apply them; pass a `store` primed with the rows the caller
    holds locked (and to read the rows as projected afterwards).

    The inserts and the projection writes go out as one pipelined batch: appends hold the
    log's lock until commit, so each round trip saved there is throughput for everyone.
    """
    store = store or DbStore(conn)
    with conn.pipeline():
        recorded = append(conn, actor, *new_events)
        for event in recorded:
            apply(store, event)
    return recorded
