"""Integration fixtures: scratch databases on the test stack's Postgres, and pointing the
library (this process) at one of them or at other settings for a while."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from slipway import config, db, storage
from slipway.db import migrate
from tests.support import ROOT


@contextmanager
def library_settings(**env: str) -> Iterator[None]:
    """Run the library in this process with these environment settings, then restore."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    config.settings.cache_clear()
    storage.client.cache_clear()
    db.close_pool()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        config.settings.cache_clear()
        storage.client.cache_clear()
        db.close_pool()


def create_database(admin_url: str) -> str:
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, ROOT / "infra" / "migrations")
    return url


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def scratch_db(stack: dict[str, str]) -> Iterator[str]:
    """A fresh, migrated database of its own (dropped afterwards)."""
    url = create_database(stack["DATABASE_URL"])
    try:
        yield url
    finally:
        drop_database(stack["DATABASE_URL"], url)


@pytest.fixture
def on_scratch_db(scratch_db: str) -> Iterator[str]:
    """The library in this process uses the scratch database while the test runs."""
    with library_settings(DATABASE_URL=scratch_db, SLIPWAY_DB_POOL_MAX="12"):
        yield scratch_db


FIXTURE_DIR: Path = ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _running_stack(stack: dict[str, str]) -> dict[str, str]:
    """Every integration test runs against the real stack (Postgres + LocalStack)."""
    return stack
