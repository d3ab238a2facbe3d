"""What the benchmarks share: the running local stack's settings, measuring a side in a
child process (wall time and peak RSS), scratch databases, and the RESULT line.

Every benchmark runs Slipway and its reference side by side in one run, on the same
machine, data and servers, and prints `RESULT <name> ratio=<slipway/reference> ...` last.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".slipway" / "bench"
MiB = 1024 * 1024


def stack_env() -> dict[str, str]:
    path = ROOT / ".slipway" / "local.env"
    if not path.exists():
        sys.exit("the benchmarks use the local stack: run `make up` first")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def use_stack() -> dict[str, str]:
    """Point this process's library at the running stack."""
    env = stack_env()
    os.environ.update(env)
    return env


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mib: float
    output: str


def measure(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command; its wall time and the peak resident memory of that process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}… failed with exit code {proc.returncode}")
    return Measured(elapsed, usage.ru_maxrss / 1024, output)


def itself(*args: str) -> list[str]:
    """This script run again as a child, for one measured side."""
    return [sys.executable, sys.argv[0], *args]


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        from slipway.db import migrate

        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, ROOT / "infra" / "migrations")
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _process_group(cmdline: str, parent: str) -> str:
    if "postgres" in cmdline:
        return "postgres"
    if "localstack" in cmdline:
        return "localstack"
    if "slipway_local" in parent and "multiprocessing" in cmdline:
        return "functions"  # the local stack's function instances (spawned by `serve`)
    if "slipway_local" in cmdline:
        return "gateway"
    return "other"


def process_cpu() -> dict[str, float]:
    """CPU seconds used so far on this machine (Linux /proc), by process group: the stack's
    Postgres, LocalStack, the function instances, the gateway, this benchmark with its
    child processes (`client`), and the rest. A difference of two snapshots says where a
    side's CPU went: on 2 cores the stack's processes share them with the client."""
    clock = os.sysconf("SC_CLK_TCK")
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        # its own time and its ended children's (Postgres backends, the writers a bench spawned)
        ticks = sum(int(f) for f in fields[11:15])
        procs[int(entry.name)] = (cmdline, int(fields[1]), ticks)
    used: dict[str, float] = {}
    for pid, (cmdline, parent, ticks) in procs.items():
        mine = os.getpid() in (pid, parent)
        group = "client" if mine else _process_group(cmdline, procs.get(parent, ("", 0, 0))[0])
        used[group] = used.get(group, 0.0) + ticks / clock
    return used


def cpu_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item by process group between two `process_cpu` snapshots,
    largest first, with their `total`."""
    spent = {k: (after[k] - before.get(k, 0.0)) * 1000 / items for k in after}
    shown = dict(sorted(((k, v) for k, v in spent.items() if v >= 0.05), key=lambda kv: -kv[1]))
    return {"total": sum(shown.values())} | shown


def result(name: str, ratio: float, **more: object) -> None:
    fields = " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in more.items()
    )
    print(f"RESULT {name} ratio={ratio:.3f} {fields}".rstrip(), flush=True)
