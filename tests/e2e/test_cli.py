"""The `slipway` command as a user runs it against the stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import FIXTURES, SECRET, run_cli


def slipway(api: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SLIPWAY_API_URL": api,
        "SLIPWAY_JWT_SECRET": SECRET,
        "SLIPWAY_USER": "cli-user",
        "XDG_STATE_HOME": str(home),
        "SLIPWAY_ENV_FILE": "/nonexistent",
    }
    env.pop("SLIPWAY_TOKEN", None)
    return run_cli(*args, env=env)


def test_upload_wait_status_and_errors(api: str, tmp_path: Path) -> None:
    good = slipway(
        api,
        "upload",
        str(FIXTURES / "telemetry" / "sample_track.gpx"),
        "--kind",
        "telemetry",
        "--wait",
        home=tmp_path,
    )
    assert good.returncode == 0, good.stderr
    upload_id = good.stdout.splitlines()[0]
    session = json.loads("\n".join(good.stdout.splitlines()[1:]))
    assert session["status"] == "ready" and session["streams"][0]["rows"] == 100
    assert "upload ready" in good.stderr and "session ready" in good.stderr

    status = slipway(api, "status", upload_id, home=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "ready"

    bad = slipway(
        api,
        "upload",
        str(FIXTURES / "telemetry" / "gpx_malformed.gpx"),
        "--kind",
        "telemetry",
        "--wait",
        home=tmp_path,
    )
    assert bad.returncode == 1
    assert json.loads("\n".join(bad.stdout.splitlines()[1:]))["failure"]["code"] == "GPX_MALFORMED"

    missing = slipway(
        api, "upload", str(tmp_path / "nope.csv"), "--kind", "telemetry", home=tmp_path
    )
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    unknown = slipway(api, "status", "00000000-0000-0000-0000-000000000000", home=tmp_path)
    assert unknown.returncode == 1 and "no upload, job or session" in unknown.stderr
    offline = slipway("http://127.0.0.1:9", "status", upload_id, home=tmp_path)
    assert offline.returncode == 2 and "cannot reach the API" in offline.stderr


def test_token_and_events(api: str, tmp_path: Path) -> None:
    minted = slipway(api, "token", "--user", "x", "--scope", "events:read", home=tmp_path)
    assert minted.returncode == 0 and minted.stdout.count(".") == 2
    events = slipway(api, "events", "--since", "0", home=tmp_path)
    assert events.returncode == 0
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert lines and lines[0]["sequence"] == 1
