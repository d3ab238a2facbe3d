"""A project-local Postgres cluster, started with the system's PostgreSQL binaries.

Postgres refuses to run as root, so as root the cluster belongs to the `postgres` user
(created if missing) and the server runs under `runuser`; as anyone else it runs as them.
It listens on 127.0.0.1 only, with no Unix socket (no path-length or permission trouble).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from slipway_local.processes import StackError

DATABASE = "slipway"
SERVICE_USER = "postgres"


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if found:
        return Path(found[0]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    raise StackError(
        "PostgreSQL server binaries not found: install them "
        "(Debian: apt-get install postgresql) or set DATABASE_URL"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _service_user() -> str:
    if not _as_root():
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True)
    return SERVICE_USER


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    if _as_root():
        args = ["runuser", "-u", SERVICE_USER, "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True)


def _usable_dir(wanted: Path) -> Path:
    """`wanted`, or a stand-in under /var/tmp if the service user cannot reach it."""
    wanted.parent.mkdir(parents=True, exist_ok=True)
    if not _as_root():
        return wanted
    probe = subprocess.run(
        ["runuser", "-u", SERVICE_USER, "--", "test", "-x", str(wanted.parent)], check=False
    )
    if probe.returncode == 0:
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:12]
    return Path(f"/var/tmp/slipway-pg-{digest}")  # noqa: S108 (owned 0700 by initdb)


class Cluster:
    def __init__(self, data_dir: Path, port: int, *, durable: bool) -> None:
        self.data_dir = _usable_dir(data_dir)
        self.port = port
        self.durable = durable

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def running(self) -> bool:
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def start(self) -> None:
        if self.running():
            return
        bin_dir = binaries()
        user = _service_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.data_dir, user)
            self.data_dir.chmod(0o700)
            _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            "-c max_connections=300",
        ]
        if not self.durable:  # tests only: never for data anyone keeps
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                " ".join(options),
            ]
        )
        deadline = time.monotonic() + 30
        while not self.running():
            if time.monotonic() > deadline:
                raise StackError(
                    f"Postgres did not accept connections; see {self.data_dir}/server.log"
                )
            time.sleep(0.2)
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            _run([str(binaries() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
