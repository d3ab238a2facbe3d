"""Where projectors read and write rows: live in Postgres, or in memory during replay.

Both stores hold whole rows as dicts keyed by column name; a projector reads a row with
`get`, builds the new version and writes it back whole with `put`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any, Protocol

from psycopg import sql
from psycopg.types.json import Jsonb

from slipway.db import Connection

Row = dict[str, Any]

# Every projection table and its primary key, in the order replay loads them.
TABLES: dict[str, tuple[str, ...]] = {
    "uploads": ("id",),
    "blobs": ("sha256",),
    "jobs": ("id",),
    "slides": ("upload_id",),
    "telemetry_sessions": ("id",),
    "telemetry_runs": ("id",),
    "telemetry_streams": ("session_id", "name"),
    "line_scans": ("id",),
    "line_scan_tiles": ("scan_id", "tile_id"),
}


class Store(Protocol):
    def get(self, table: str, *key: Any) -> Row | None: ...

    def put(self, table: str, row: Row) -> None: ...


def key_of(table: str, row: Row) -> tuple[Any, ...]:
    columns = TABLES[table]
    if len(columns) == 1:  # the common case, kept fast for replay
        return (row[columns[0]],)
    return tuple(row[column] for column in columns)


class MemoryStore:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Row]] = {name: {} for name in TABLES}

    def get(self, table: str, *key: Any) -> Row | None:
        return self.tables[table].get(key)

    def put(self, table: str, row: Row) -> None:
        self.tables[table][key_of(table, row)] = row

    def rows(self, table: str) -> Iterator[Row]:
        return iter(self.tables[table].values())


def adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


# The statements are built once as bytes: composing them on every call cost more CPU than
# the rest of a projection write, and every state change runs them.
@cache
def _select(table: str) -> bytes:
    where = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(col)) for col in TABLES[table]
    )
    return (
        sql.SQL("SELECT * FROM {} WHERE {} FOR UPDATE")
        .format(sql.Identifier(table), where)
        .as_bytes()
    )


# A row that is not there yet cannot be locked: its key is, for the transaction, so two
# writers creating one row (one blob for two uploads of the same bytes) take turns.
_LOCK_KEY = b"SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


@cache
def _upsert(table: str, columns: tuple[str, ...]) -> bytes:
    keys = TABLES[table]
    updates = [c for c in columns if c not in keys]
    statement = sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({keys}) DO {action}"
    ).format(
        t=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        action=sql.SQL("UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updates
            )
        )
        if updates
        else sql.SQL("NOTHING"),
    )
    return statement.as_bytes()


@cache
def _update(table: str, columns: tuple[str, ...]) -> bytes:
    def assign(names: Iterable[str], joiner: str) -> sql.Composed:
        return sql.SQL(joiner).join(
            sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names
        )

    return (
        sql.SQL("UPDATE {} SET {} WHERE {}")
        .format(sql.Identifier(table), assign(columns, ", "), assign(TABLES[table], " AND "))
        .as_bytes()
    )


class DbStore:
    """The live projection tables, inside the caller's transaction.

    Every row a projector reads is locked until commit (`FOR UPDATE`; a missing row's key
    by an advisory lock), so no other writer changes it meanwhile, and the transaction's
    events take their inbox ids after every lock they depend on: what makes replay in log
    order reproduce these rows (docs/event-log.md#group-commit). Rows read or written,
    and rows the caller already holds locked (`known`), are kept for the transaction, as
    is a missing row whose key is locked (None); a held row is written back as an UPDATE
    of the changed columns only.
    """

    def __init__(self, conn: Connection, known: Iterable[tuple[str, Row]] = ()) -> None:
        self.conn = conn
        self.rows: dict[tuple[str, tuple[Any, ...]], Row | None] = {
            (table, key_of(table, row)): dict(row) for table, row in known
        }

    def get(self, table: str, *key: Any) -> Row | None:
        if (table, key) in self.rows:
            return self.rows[(table, key)]
        row = self.conn.execute(_select(table), key).fetchone()
        if row is None:
            self.conn.execute(_LOCK_KEY, (f"{table}:{key!r}",))
            row = self.conn.execute(_select(table), key).fetchone()
        self.rows[(table, key)] = row
        return row

    def put(self, table: str, row: Row) -> None:
        key = key_of(table, row)
        held = self.rows.get((table, key))
        if held is None:
            columns = tuple(row)
            self.conn.execute(_upsert(table, columns), [adapt(row[c]) for c in columns])
        else:
            changed = tuple(c for c in row if c not in held or row[c] != held[c])
            if changed:
                values = [adapt(row[c]) for c in changed]
                self.conn.execute(_update(table, changed), [*values, *key])
        self.rows[(table, key)] = row
