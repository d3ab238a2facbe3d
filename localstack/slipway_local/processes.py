"""Detached daemons with pid files, and waiting for them to answer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class StackError(RuntimeError):
    """The local stack cannot start; the message says what to do."""


def alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_detached(
    command: list[str], *, log: Path, pid_file: Path, env: dict[str, str], cwd: Path
) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def _exited(pid: int) -> bool:
    try:  # our own child (the stack was started by this process): reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def stop(pid_file: Path, timeout: float = 20) -> None:
    pid = alive(pid_file)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _exited(pid):
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def start_seconds() -> float:
    """How long a service may take to start: long, since a busy host (CI, parallel test
    sessions) starts LocalStack slowly; SLIPWAY_LOCAL_START_SECONDS overrides it."""
    return float(os.environ.get("SLIPWAY_LOCAL_START_SECONDS") or 300)


def wait_for_http(
    url: str, *, timeout: float, pid_file: Path, log: Path, expect: bytes = b""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive(pid_file) is None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StackError(f"{url} died while starting; last log lines:\n{tail}")
        try:
            # a loaded host answers slowly: each try may take up to 10 s of what is left
            wait = min(10.0, max(deadline - time.monotonic(), 0.5))
            with urllib.request.urlopen(url, timeout=wait) as reply:  # noqa: S310 (loopback)
                if expect in reply.read():
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise StackError(f"{url} did not answer within {timeout:.0f} s; {log} ends:\n{tail}")
