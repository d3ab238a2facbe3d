"""Current-state tables as projections of the event log.

`record` is the only way state changes: it applies each event to the live tables and
submits it to the log, inside the caller's transaction.
"""

from __future__ import annotations

from slipway.db import Connection
from slipway.events import Event, NewEvent, prepare, submit
from slipway.projections.projectors import ProjectionError, apply
from slipway.projections.store import TABLES, DbStore, MemoryStore

__all__ = ["TABLES", "DbStore", "MemoryStore", "ProjectionError", "apply", "record"]


def record(
    conn: Connection, actor: str, *new_events: NewEvent, store: DbStore | None = None
) -> list[Event]:
    """Apply the events, then submit them to the log; pass a `store` primed with the rows
    the caller holds locked (and to read the rows as projected afterwards).

    The order matters: the projection writes lock their rows before the inbox insert takes
    the events' ids, so two transactions writing one row get ids in their commit order
    (docs/event-log.md#group-commit). The writes go out as one pipelined batch.
    """
    store = store or DbStore(conn)
    with conn.pipeline():
        prepared = prepare(conn, actor, new_events)
        for event in prepared:
            apply(store, event)
        submit(conn, prepared)
    return prepared
