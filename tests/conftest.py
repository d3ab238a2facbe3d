"""Shared fixtures. `stack` starts a whole local stack of its own for the test session
(Postgres, LocalStack, the API gateway and the event poller, on free ports, in
.slipway/test-stack-<pid>/) and stops it afterwards; only tests that ask for it pay."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from slipway import config, db, storage
from slipway.client import Client
from slipway_local.stack import Stack, StackConfig
from tests.support import ROOT, SECRET, TUNING, free_ports, token


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Stack]:
    """A running test stack: this process's library is pointed at it while it lives."""
    for leftover in ROOT.glob(".slipway/test-stack-*"):  # of a session that was killed
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            abandoned = StackConfig.saved(leftover)
            if abandoned:
                Stack(abandoned).down()
    pg, ls, api = free_ports(3)
    state = ROOT / ".slipway" / f"test-stack-{os.getpid()}"
    cfg = StackConfig(
        state=str(state),
        env_file=str(state / "local.env"),
        localstack_venv=os.environ.get(
            "SLIPWAY_LOCALSTACK_VENV", str(ROOT / ".slipway" / "localstack-venv")
        ),
        pg_port=pg,
        localstack_port=ls,
        api_port=api,
        durable=False,
        external_database_url=os.environ.get("SLIPWAY_TEST_DATABASE_URL", ""),
        jwt_secret=SECRET,
        visibility_timeout=5,
        tuning=TUNING,
    )
    running = Stack(cfg)
    try:
        env = running.up()
    except Exception:
        running.down()
        raise
    saved = dict(os.environ)
    os.environ.update(env | TUNING)
    config.settings.cache_clear()
    storage.client.cache_clear()
    db.close_pool()
    try:
        yield running
    finally:
        db.close_pool()
        os.environ.clear()
        os.environ.update(saved)
        config.settings.cache_clear()
        storage.client.cache_clear()
        running.down()


@pytest.fixture(scope="session")
def stack(local_stack: Stack) -> dict[str, str]:
    """The running test stack's environment (the keys of .slipway/local.env)."""
    return local_stack.client_env()


@pytest.fixture(scope="session")
def api(stack: dict[str, str]) -> str:
    return stack["SLIPWAY_API_URL"]


@pytest.fixture(scope="session")
def client_for(api: str) -> Callable[..., Client]:
    def make(user: str, *scopes: str) -> Client:
        return Client(api, token(user, *scopes))

    return make


@pytest.fixture
def conn(stack: dict[str, str]) -> Iterator[psycopg.Connection[DictRow]]:
    with psycopg.connect(stack["DATABASE_URL"], autocommit=True, row_factory=dict_row) as c:
        yield c
