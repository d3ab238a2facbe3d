"""Rebuild the projections from the log, and compare them with the live tables.

Replay folds every event through the same projectors into memory, then bulk-loads the
result with COPY. `differences` runs in one REPEATABLE READ snapshot, so the live tables
and the log it replays are the same instant: any difference is a row the log does not
explain (or a row it explains that is missing). The liveness columns a heartbeat updates
without an event (projectors.LIVENESS) are left out of the comparison.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row

from slipway.db import Connection
from slipway.events import REPLAY_COLUMNS, Event, inbox
from slipway.projections.projectors import LIVENESS, apply
from slipway.projections.store import TABLES, MemoryStore, adapt


@dataclass(frozen=True)
class ReplayStats:
    events: int
    seconds: float
    rows: dict[str, int]


@dataclass(frozen=True)
class Difference:
    table: str
    kind: str  # "unexplained" (live only) or "missing" (replay only)
    row: dict[str, Any]


def fold(conn: Connection, batch: int = 50_000) -> tuple[MemoryStore, int]:
    """Apply the whole log to an empty in-memory store, then the committed events still in
    the inbox, in the order the sequencer will give them (in the caller's transaction,
    which must be one snapshot: REPEATABLE READ)."""
    store, count = MemoryStore(), 0
    gc.disable()  # millions of live rows, no cycles: the collector would rescan them all
    try:
        with conn.cursor(name="replay_events", row_factory=tuple_row, binary=True) as cur:
            cur.execute(f"SELECT {REPLAY_COLUMNS} FROM events ORDER BY sequence")
            while rows := cur.fetchmany(batch):
                for row in rows:
                    apply(store, Event.from_tuple(row))
                count += len(rows)
        pending = inbox(conn)
        for event in pending:
            apply(store, event)
        count += len(pending)
    finally:
        gc.enable()
    return store, count


def _load(conn: Connection, store: MemoryStore, target: Mapping[str, sql.Composable]) -> None:
    for table in TABLES:
        rows = list(store.rows(table))
        if not rows:
            continue
        columns = list(rows[0])
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            target[table], sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with conn.cursor().copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([adapt(row[c]) for c in columns])


def rebuild(conn: Connection, schema: str) -> ReplayStats:
    """Replay the log into fresh tables in `schema` (dropped and recreated)."""
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        store, count = fold(conn)
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}").format(
                s=sql.Identifier(schema)
            )
        )
        target = {t: sql.Identifier(schema, t) for t in TABLES}
        for table in TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    target[table], sql.Identifier("public", table)
                )
            )
        _load(conn, store, target)
    rows = {t: len(store.tables[t]) for t in TABLES}
    return ReplayStats(count, time.perf_counter() - started, rows)


def _compared(conn: Connection, table: sql.Composable, ignored: tuple[str, ...]) -> sql.Composable:
    """The table's columns, in order, without the ignored ones."""
    cur = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
    names = [c.name for c in cur.description or () if c.name not in ignored]
    return sql.SQL(", ").join(map(sql.Identifier, names))


def differences(conn: Connection, limit: int = 100) -> tuple[ReplayStats, list[Difference]]:
    """Replay into temporary tables and diff them against the live ones, one snapshot."""
    started = time.perf_counter()
    found: list[Difference] = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        store, count = fold(conn)
        target: dict[str, sql.Composable] = {}
        for table in TABLES:
            target[table] = sql.Identifier(f"replay_{table}")
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                    target[table], sql.Identifier("public", table)
                )
            )
        _load(conn, store, target)
        for table in TABLES:
            live = sql.Identifier("public", table)
            columns = _compared(conn, live, LIVENESS.get(table, ()))
            for kind, left, right in (
                ("unexplained", live, target[table]),
                ("missing", target[table], live),
            ):
                query = sql.SQL(
                    "(SELECT {c} FROM {} EXCEPT ALL SELECT {c} FROM {}) LIMIT {}"
                ).format(left, right, sql.Literal(limit), c=columns)
                for row in conn.execute(query):
                    found.append(Difference(table, kind, dict(row)))
    rows = {t: len(store.tables[t]) for t in TABLES}
    return ReplayStats(count, time.perf_counter() - started, rows), found
