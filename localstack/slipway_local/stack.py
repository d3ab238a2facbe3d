"""The whole local stack: Postgres, LocalStack, the template's resources, and `serve` (the
API Gateway stand-in, the SQS event-source mappings and the schedules, all invoking the
very same handlers as on Lambda). `up` is idempotent; `down` stops it and discards its
data (LocalStack keeps S3 and SQS in memory, so the database goes with them)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from slipway_local import processes, resources
from slipway_local.emulator import LocalStack
from slipway_local.gateway import Gateway
from slipway_local.poller import QueueMapping, Scheduler
from slipway_local.postgres import Cluster
from slipway_local.processes import StackError
from slipway_local.runtime import FunctionPool
from slipway_local.template import ACCOUNT, REGION, Template

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "slipway"
LOCAL_JWT_SECRET = "slipway-local-development-secret-not-for-production"  # noqa: S105
log = logging.getLogger("slipway_local.stack")


@dataclass
class StackConfig:
    state: str
    env_file: str
    localstack_venv: str
    pg_port: int
    localstack_port: int
    api_port: int
    durable: bool
    external_database_url: str
    jwt_secret: str
    visibility_timeout: int | None
    tuning: dict[str, str]  # SLIPWAY_* settings handed to every function

    @classmethod
    def from_env(cls, state: Path | None = None) -> StackConfig:
        env = os.environ
        slipway = ROOT / ".slipway"
        state = state or Path(env.get("SLIPWAY_STATE_DIR", slipway / "stack"))
        reserved = {"SLIPWAY_STATE_DIR", "SLIPWAY_ENV_FILE", "SLIPWAY_JWT_SECRET"}
        return cls(
            state=str(state.resolve()),
            env_file=env.get("SLIPWAY_ENV_FILE", str(slipway / "local.env")),
            localstack_venv=env.get("SLIPWAY_LOCALSTACK_VENV", str(slipway / "localstack-venv")),
            pg_port=int(env.get("SLIPWAY_PG_PORT", 54329)),
            localstack_port=int(env.get("SLIPWAY_LOCALSTACK_PORT", 4566)),
            api_port=int(env.get("SLIPWAY_API_PORT", 8750)),
            durable=env.get("SLIPWAY_LOCAL_DURABLE", "1") != "0",
            external_database_url=env.get("DATABASE_URL", ""),
            jwt_secret=env.get("SLIPWAY_JWT_SECRET", LOCAL_JWT_SECRET),
            visibility_timeout=int(env["SLIPWAY_LOCAL_VISIBILITY_TIMEOUT"])
            if env.get("SLIPWAY_LOCAL_VISIBILITY_TIMEOUT")
            else None,
            tuning={
                k: v
                for k, v in env.items()
                if k.startswith("SLIPWAY_")
                and k not in reserved
                and not k.startswith(
                    ("SLIPWAY_LOCAL", "SLIPWAY_PG_", "SLIPWAY_API_PORT", "SLIPWAY_LOCALSTACK")
                )
            },
        )

    @property
    def state_dir(self) -> Path:
        return Path(self.state)

    @classmethod
    def saved(cls, state: Path) -> StackConfig | None:
        """The configuration `up` recorded for a running stack, if any."""
        path = state / "stack.json"
        return cls(**json.loads(path.read_text())) if path.exists() else None


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        state = config.state_dir
        self.cluster = Cluster(state / "pg", config.pg_port, durable=config.durable)
        self.localstack = LocalStack(Path(config.localstack_venv), state, config.localstack_port)
        self.serve_pid = state / "serve.pid"
        self.serve_log = state / "logs" / "functions.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def database_url(self) -> str:
        return self.config.external_database_url or self.cluster.url

    def template(self) -> Template:
        return Template(
            ROOT / "template.yaml",
            STACK_NAME,
            {
                "DatabaseUrl": self.database_url,
                "JwtSecret": self.config.jwt_secret,
                "TileConcurrency": "4",  # two cores: AWS's 100 pollers would only queue here
            },
            self.localstack.endpoint,
        )

    def function_env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_"))},
            "SLIPWAY_ENV": "local",  # the functions may then run with the published secret
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here (slipway.tracing)
            **self.config.tuning,
            "AWS_ENDPOINT_URL": self.localstack.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client_env(self) -> dict[str, str]:
        """What `.slipway/local.env` tells clients (and the tests)."""
        t = self.template()
        return {
            "SLIPWAY_API_URL": self.api_url,
            "AWS_ENDPOINT_URL": self.localstack.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "DATABASE_URL": self.database_url,
            "SLIPWAY_JWT_SECRET": self.config.jwt_secret,
            "SLIPWAY_UPLOADS_BUCKET": t.bucket_name("UploadsBucket"),
            "SLIPWAY_DATA_BUCKET": t.bucket_name("DataBucket"),
            "SLIPWAY_TILES_BUCKET": t.bucket_name("TilesBucket"),
            "SLIPWAY_UPLOAD_EVENTS_QUEUE_URL": t.queue_url("UploadEventsQueue"),
            "SLIPWAY_TILE_QUEUE_URL": t.queue_url("TileQueue"),
            "SLIPWAY_PARSE_QUEUE_URL": t.queue_url("ParseQueue"),
        }

    # --- lifecycle ---------------------------------------------------------------------

    def serving(self) -> bool:
        if processes.alive(self.serve_pid) is None:
            return False
        try:
            processes.wait_for_http(
                f"{self.api_url}/v1/health",
                timeout=5,
                pid_file=self.serve_pid,
                log=self.serve_log,
                expect=b'"ok"',
            )
        except StackError:
            return False
        return True

    def up(self) -> dict[str, str]:
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        if self.serving() and self.localstack.running():
            self._write_env_file()
            return self.client_env()
        for name, port in (
            ("Postgres", self.config.pg_port),
            ("LocalStack", self.config.localstack_port),
            ("the API", self.config.api_port),
        ):
            if name == "Postgres" and (self.config.external_database_url or self.cluster.running()):
                continue
            if name == "LocalStack" and self.localstack.running():
                continue
            _require_free(port, name)
        if not self.config.external_database_url:
            self.cluster.start()
        self.migrate()
        self.localstack.start()
        resources.create_all(
            self.template(), self.localstack.endpoint, self.config.visibility_timeout
        )
        (state / "stack.json").write_text(json.dumps(asdict(self.config), indent=2))
        if processes.alive(self.serve_pid) is None:
            processes.start_detached(
                [sys.executable, "-m", "slipway_local", "serve", "--state", str(state)],
                log=self.serve_log,
                pid_file=self.serve_pid,
                env=dict(os.environ),
                cwd=ROOT,
            )
        processes.wait_for_http(
            f"{self.api_url}/v1/health",
            timeout=processes.start_seconds(),
            pid_file=self.serve_pid,
            log=self.serve_log,
            expect=b'"ok"',
        )
        self._write_env_file()
        return self.client_env()

    def migrate(self) -> list[str]:
        sys.path.insert(0, str(ROOT / "layers" / "slipway"))
        from slipway.db import migrate

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return migrate(conn, ROOT / "infra" / "migrations")

    def _write_env_file(self) -> None:
        path = Path(self.config.env_file)
        text = "".join(f"{k}={v}\n" for k, v in self.client_env().items())
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def down(self) -> None:
        processes.stop(self.serve_pid)
        self.localstack.stop()
        if not self.config.external_database_url:
            self.cluster.remove()
        shutil.rmtree(self.config.state_dir, ignore_errors=True)
        Path(self.config.env_file).unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        return {
            "postgres": "external"
            if self.config.external_database_url
            else ("up" if self.cluster.running() else "down"),
            "localstack": "up" if self.localstack.running() else "down",
            "api": "up" if self.serving() else "down",
        }

    # --- serve: the functions' runtime (the detached process `up` starts) -------------------

    def serve(self) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        template = self.template()
        env = self.function_env()
        pools = {name: FunctionPool(fn, env) for name, fn in template.functions().items()}
        warmers = [
            threading.Thread(target=_warm, args=(pool,), daemon=True) for pool in pools.values()
        ]
        for warmer in warmers:
            warmer.start()
        stop = threading.Event()
        _, sqs = resources.clients(self.localstack.endpoint)
        for source in template.queue_sources():
            arn = template.get_att(source.queue, "Arn")
            for _ in range(source.concurrency):
                QueueMapping(
                    source, template.queue_url(source.queue), arn, pools[source.function], sqs, stop
                ).start()
        for schedule in template.schedules():
            Scheduler(schedule, pools[schedule.function], stop).start()
        gateway = Gateway(
            ("127.0.0.1", self.config.api_port), template.routes(), pools, template.cors()
        )
        signal.signal(
            signal.SIGTERM,
            lambda *_: threading.Thread(target=gateway.shutdown, daemon=True).start(),
        )
        log.info("API on %s, %d functions, account %s", self.api_url, len(pools), ACCOUNT)
        try:
            gateway.serve_forever()
        finally:
            stop.set()
            for pool in pools.values():
                pool.close()


def _warm(pool: FunctionPool) -> None:
    try:
        pool.warm()
    except Exception:
        log.exception("could not start %s", pool.function.name)


def _require_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise StackError(
                f"port {port} for {what} is taken by another program; stop it or "
                "choose another port (see docs/local-stack.md)"
            )
