"""LocalStack (S3 + SQS with real bucket notifications) on the host, without Docker.

It runs from its own virtualenv (pinned in localstack/requirements.lock): LocalStack
2026.3 needs Python 3.13, the app uses 3.12, and their dependency pins differ.
docs/local-stack.md explains the choice and the environment below.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from slipway_local.processes import (
    StackError,
    alive,
    start_detached,
    start_seconds,
    stop,
    wait_for_http,
)

HERE = Path(__file__).resolve().parent.parent  # localstack/
LOCK = HERE / "requirements.lock"


def find_python313() -> str:
    candidates = [os.environ.get("SLIPWAY_LOCALSTACK_PYTHON", ""), "python3.13"]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    candidates += sorted(glob.glob("/root/.pyenv/versions/3.13*/bin/python3.13"))
    candidates += ["/usr/local/bin/python3.13", "/usr/bin/python3.13"]
    for candidate in filter(None, candidates):
        path = shutil.which(candidate) or candidate
        try:
            out = subprocess.run(
                [path, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 13)":
            return path
    raise StackError(
        "LocalStack 2026.3 needs Python 3.13 and none was found: install it "
        "(e.g. `pyenv install 3.13`) or set SLIPWAY_LOCALSTACK_PYTHON"
    )


def ensure_venv(venv: Path) -> Path:
    """The LocalStack virtualenv, created from the lock file if missing or stale."""
    python = venv / "bin" / "python"
    stamp = venv / ".lock-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == LOCK.read_text():
        return python
    print(f"installing LocalStack into {venv} (once; about a minute)…", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([find_python313(), "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(LOCK),
        ],
        check=True,
    )
    stamp.write_text(LOCK.read_text())
    return python


class LocalStack:
    def __init__(self, venv: Path, state_dir: Path, port: int) -> None:
        self.venv, self.state_dir, self.port = venv, state_dir, port
        self.pid_file = state_dir / "localstack.pid"
        self.log = state_dir / "logs" / "localstack.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return alive(self.pid_file) is not None

    def start(self) -> None:
        if self.running():
            return
        python = ensure_venv(self.venv)
        data = self.state_dir / "localstack"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "OVERRIDE_IN_DOCKER": "0",  # the machine looks like a container to it
            "GATEWAY_SERVER": "hypercorn",  # binds only where GATEWAY_LISTEN says
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "LOCALSTACK_HOST": f"127.0.0.1:{self.port}",
            "SERVICES": "s3,sqs",
            "FILESYSTEM_ROOT": str(data),  # state under the project, not /var/lib
            "DNS_ADDRESS": "0",  # no DNS server on port 53
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "S3_SKIP_SIGNATURE_VALIDATION": "0",  # check pre-signed URLs as AWS does
            "SQS_ENDPOINT_STRATEGY": "off",  # queue URLs: http://127.0.0.1:port/account/name
        }
        start_detached(
            [str(python), "-m", "localstack.runtime.main"],
            log=self.log,
            pid_file=self.pid_file,
            env=env,
            cwd=data,
        )
        wait_for_http(
            f"{self.endpoint}/_localstack/init/ready",
            timeout=start_seconds(),
            pid_file=self.pid_file,
            log=self.log,
            expect=b'"completed": true',
        )

    def stop(self) -> None:
        stop(self.pid_file)
