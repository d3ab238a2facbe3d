"""Postgres access: one lazily opened connection pool per process, transactions, migrations.

Connections are autocommit; every write goes through `transaction()`, so a block of work
is one explicit transaction and reads outside it see the latest committed state.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from slipway.config import settings

Connection = psycopg.Connection[DictRow]

_lock = threading.Lock()
_pool: ConnectionPool[Connection] | None = None
_last_used: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
IDLE_CHECK_SECONDS = 5.0


def _check_if_idle(conn: Connection) -> None:
    """Ping a connection before use only if it sat idle (a frozen Lambda, a restarted
    server): a ping on every checkout would add a round trip to every transaction."""
    if time.monotonic() - _last_used.get(conn, 0.0) > IDLE_CHECK_SECONDS:
        ConnectionPool.check_connection(conn)


def pool() -> ConnectionPool[Connection]:
    global _pool
    with _lock:
        if _pool is None:
            if not settings().database_url:
                raise RuntimeError("DATABASE_URL is not set")
            _pool = ConnectionPool(
                settings().database_url,
                connection_class=psycopg.Connection[DictRow],
                kwargs={"autocommit": True, "row_factory": dict_row},
                min_size=1,
                max_size=max(settings().db_pool_max, 2),
                check=_check_if_idle,
                name="slipway",
                open=True,
            )
        return _pool


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def connect() -> Iterator[Connection]:
    with pool().connection() as conn:
        try:
            yield conn
        finally:
            _last_used[conn] = time.monotonic()


@contextmanager
def transaction() -> Iterator[Connection]:
    with connect() as conn, conn.transaction():
        yield conn


def ping() -> None:
    with connect() as conn:
        conn.execute("SELECT 1")


def migrate(conn: psycopg.Connection[Any], directory: Path) -> list[str]:
    """Apply the `NNNN_name.sql` files not applied yet, in order; returns their names."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('slipway.migrate'))")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.cursor().execute("SELECT version FROM schema_migrations")}
        for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            if path.stem in done:
                continue
            conn.execute(path.read_text().encode())  # a migration file: trusted SQL text
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied.append(path.stem)
    return applied
