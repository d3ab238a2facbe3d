"""Postgres access: one lazily opened connection pool per process, transactions, migrations.

Connections are autocommit; every write goes through `transaction()`, so a block of work
is one explicit transaction and reads outside it see the latest committed state.

Postgres down: a request waits `db_wait_seconds` for a pooled connection, then one direct
connection attempt (bounded by `db_connect_timeout_seconds`) tells an outage from a busy
pool. An outage, or a connection lost mid-block, is SlipwayError UNAVAILABLE (503, not
permanent: jobs retry), in seconds rather than the pool's 30 s; a busy pool waits on.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from slipway.config import settings
from slipway.errors import Code, SlipwayError

Connection = psycopg.Connection[DictRow]

_lock = threading.Lock()
_pool: ConnectionPool[Connection] | None = None
_last_used: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
IDLE_CHECK_SECONDS = 5.0
# Short: reconnection gives up soon and the next request starts afresh, so a pool finds a
# restarted server at once instead of after a backoff grown over the outage.
RECONNECT_SECONDS = 5.0
HEALTH_WAIT_SECONDS = 1.0
_outage_at = 0.0  # monotonic time this process last found the database unreachable


def unavailable(message: str = "the database is unavailable; try again shortly") -> SlipwayError:
    return SlipwayError(Code.UNAVAILABLE, message, status=503, permanent=False)


def _check_if_idle(conn: Connection) -> None:
    """Ping a connection before use only if it sat idle (a frozen Lambda, a restarted
    server) or predates an outage: a ping on every checkout would add a round trip to
    every transaction."""
    last = _last_used.get(conn, 0.0)
    if time.monotonic() - last > IDLE_CHECK_SECONDS or last <= _outage_at:
        ConnectionPool.check_connection(conn)


def _outage() -> SlipwayError:
    global _outage_at
    _outage_at = time.monotonic()
    return unavailable()


def _reachable() -> bool:
    """One direct connection attempt: is Postgres up at all?"""
    try:
        psycopg.connect(
            settings().database_url, connect_timeout=settings().db_connect_timeout_seconds
        ).close()
    except psycopg.Error:
        return False
    return True


def pool() -> ConnectionPool[Connection]:
    global _pool
    with _lock:
        if _pool is None:
            if not settings().database_url:
                raise RuntimeError("DATABASE_URL is not set")
            _pool = ConnectionPool(
                settings().database_url,
                connection_class=psycopg.Connection[DictRow],
                kwargs={
                    "autocommit": True,
                    "row_factory": dict_row,
                    "connect_timeout": settings().db_connect_timeout_seconds,
                },
                min_size=1,
                max_size=max(settings().db_pool_max, 2),
                check=_check_if_idle,
                reconnect_timeout=RECONNECT_SECONDS,
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


def _checkout(connections: ConnectionPool[Connection], wait: float) -> Connection:
    try:
        return connections.getconn(wait)
    except PoolTimeout:
        if not _reachable():
            raise _outage() from None
    try:  # Postgres is up and every connection busy: wait as long as the pool allows
        return connections.getconn()
    except PoolTimeout as exc:
        raise unavailable("no database connection came free; try again shortly") from exc


@contextmanager
def connect(wait: float | None = None) -> Iterator[Connection]:
    """A pooled connection (see the module's note on outages)."""
    connections = pool()
    conn = _checkout(connections, settings().db_wait_seconds if wait is None else wait)
    try:
        with conn:
            yield conn
    except psycopg.OperationalError as exc:
        if conn.broken:  # the server went away under this block
            raise _outage() from exc
        raise
    finally:
        _last_used[conn] = time.monotonic()
        connections.putconn(conn)


_after_commit: weakref.WeakKeyDictionary[Connection, dict[Callable[[Connection], None], None]]
_after_commit = weakref.WeakKeyDictionary()


def after_commit(conn: Connection, hook: Callable[[Connection], None]) -> None:
    """Run `hook(conn)` once the `committing` transaction on `conn` commits (not if it
    rolls back)."""
    _after_commit.setdefault(conn, {})[hook] = None


@contextmanager
def committing(conn: Connection) -> Iterator[Connection]:
    """A transaction on `conn` whose after-commit hooks run once it commits: the event
    log's sequencing (docs/event-log.md#group-commit). Nested in another transaction it
    is a savepoint, and the hooks wait for the outermost `committing`."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    try:
        with conn.transaction():
            yield conn
    except BaseException:
        if outermost:
            _after_commit.pop(conn, None)
        raise
    if outermost:
        for hook in _after_commit.pop(conn, {}):
            hook(conn)


@contextmanager
def transaction() -> Iterator[Connection]:
    """One `committing` transaction on a pooled connection."""
    with connect() as conn, committing(conn):
        yield conn


def ping() -> None:
    with connect(wait=HEALTH_WAIT_SECONDS) as conn:
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
