"""Multipart uploads over the public API, with the test stack's small parts (5 MiB parts,
multipart above 8 MiB): resume after an interruption or a kill, expired part URLs, wrong
ETags, checksum mismatches."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from slipway import storage
from slipway.client import ApiError, Client, FileSlice, ResumeBook, sha256_of
from tests.support import ROOT, MiB, token, wait_for


@pytest.fixture
def forty_mib(tmp_path: Path) -> Path:
    path = tmp_path / "slide.bin"
    path.write_bytes(os.urandom(40 * MiB))
    return path


def put_part(client: Client, upload_id: str, path: Path, number: int, part_size: int) -> None:
    offset = (number - 1) * part_size
    length = min(part_size, path.stat().st_size - offset)
    signed = client.sign_parts(upload_id, [(number, sha256_of(path, offset, length))])["parts"][0]
    client.put(signed["url"], signed["headers"], FileSlice(path, offset, length))


def held(client: Client, upload_id: str) -> dict[int, dict[str, Any]]:
    return {p["partNumber"]: p for p in client.sign_parts(upload_id, [])["uploaded"]}


def test_an_interrupted_upload_resumes_without_sending_parts_again(
    client_for: Callable[..., Client],
    forty_mib: Path,
) -> None:
    alice = client_for("alice")
    created = alice.create_upload(
        "slide", forty_mib.name, forty_mib.stat().st_size, checksum_parts=True
    )
    assert created["method"] == "MULTIPART"
    assert (created["partSize"], created["partCount"]) == (5 * MiB, 8)
    assert created["parts"] == [], "per-part checksums: URLs come from /parts"
    upload_id = created["uploadId"]
    for number in (1, 2, 3):  # the client "crashes" after three parts
        put_part(alice, upload_id, forty_mib, number, created["partSize"])
    before = held(alice, upload_id)
    assert sorted(before) == [1, 2, 3]
    assert all(p["size"] == 5 * MiB for p in before.values())

    resumed = alice.upload_file(forty_mib, "slide", resume_id=upload_id)  # a new process
    assert resumed == upload_id
    upload = alice.wait_for_upload(upload_id)
    assert upload["state"] == "ready"
    assert upload["sha256"] == sha256_of(forty_mib)
    assert upload["size"] == 40 * MiB


def test_a_killed_cli_upload_resumes_from_its_state_file(
    api: str,
    tmp_path: Path,
    client_for: Callable[..., Client],
) -> None:
    big = tmp_path / "big-slide.bin"
    big.write_bytes(os.urandom(120 * MiB))  # 24 parts: enough time to be interrupted
    env = {
        **os.environ,
        "SLIPWAY_API_URL": api,
        "SLIPWAY_TOKEN": token("dave"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "SLIPWAY_ENV_FILE": "/nonexistent",
    }
    command = [
        sys.executable,
        "-m",
        "slipway.cli",
        "upload",
        str(big),
        "--kind",
        "slide",
        "--parallel",
        "1",
        "--quiet",
    ]
    first = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    book = ResumeBook(tmp_path / "state" / "slipway" / "uploads.json")
    upload_id = wait_for(lambda: book.get(big), timeout=30, what="the CLI to start an upload")
    dave = client_for("dave")
    wait_for(
        lambda: len(held(dave, upload_id)) >= 3,
        timeout=60,
        interval=0.05,
        what="a few parts to arrive",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    partial = held(dave, upload_id)
    assert 3 <= len(partial) < 24, "killed mid-upload"

    second = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stderr
    assert f"resuming upload {upload_id}" in second.stderr
    assert second.stdout.strip() == upload_id
    assert book.get(big) is None, "a finished upload leaves no resume entry"
    upload = dave.wait_for_upload(upload_id)
    assert upload["state"] == "ready" and upload["sha256"] == sha256_of(big)


def put_status(url: str, data: bytes) -> int:
    """The status of a PUT; a server that refuses it (403) may stop reading the body and
    leave the client blocked sending it: that is the same refusal."""
    try:
        return requests.put(url, data=data, timeout=30).status_code
    except requests.ConnectionError:
        return 403


def test_expired_part_urls_are_refused_and_fresh_ones_work(
    client_for: Callable[..., Client],
    forty_mib: Path,
) -> None:
    erin = client_for("erin")
    created = erin.create_upload("slide", "x.bin", 12 * MiB)
    upload_id = created["uploadId"]
    part = created["parts"][0]
    data = forty_mib.read_bytes()[: 5 * MiB]
    # an old URL for the same part: signed like the API signs it, but already expired
    key = f"incoming/{upload_id}"
    multipart_id = part["url"].split("uploadId=")[1].split("&")[0]
    stale = storage.presign_part(
        os.environ["SLIPWAY_UPLOADS_BUCKET"], key, multipart_id, 1, size=5 * MiB, sha256=None, ttl=1
    )
    time.sleep(2)
    assert put_status(stale.url, data) == 403
    fresh = erin.sign_parts(upload_id, [(1, None)])["parts"][0]
    assert requests.put(fresh["url"], data=data, timeout=30).status_code == 200
    # a URL is for its own part only
    assert put_status(fresh["url"].replace("partNumber=1", "partNumber=2"), data) == 403
    held = storage.list_parts(os.environ["SLIPWAY_UPLOADS_BUCKET"], key, multipart_id)
    assert [p.number for p in held] == [1], "part 2 was not stored"


def test_wrong_etags_missing_parts_and_bad_checksums_are_refused(
    client_for: Callable[..., Client],
    forty_mib: Path,
) -> None:
    frank = client_for("frank")
    size = 12 * MiB
    data = forty_mib.read_bytes()[:size]
    created = frank.create_upload("slide", "x.bin", size, sha256=hashlib.sha256(data).hexdigest())
    upload_id = created["uploadId"]
    etags = []
    for part in created["parts"][:2]:
        n = part["partNumber"]
        reply = requests.put(part["url"], data=data[(n - 1) * 5 * MiB : n * 5 * MiB], timeout=30)
        etags.append({"partNumber": n, "etag": reply.headers["ETag"]})
    with pytest.raises(ApiError) as caught:
        frank.complete(upload_id, etags)
    assert (caught.value.status, caught.value.code) == (409, "NOT_UPLOADED")

    third = created["parts"][2]
    assert requests.put(third["url"], data=data[10 * MiB :], timeout=30).status_code == 200
    etags.append({"partNumber": 3, "etag": '"0123456789abcdef0123456789abcdef"'})
    with pytest.raises(ApiError) as caught:
        frank.complete(upload_id, etags)
    assert caught.value.code == "PART_MISMATCH"
    assert frank.upload(upload_id)["state"] == "pending", "a bad complete changes nothing"

    # a part whose signed checksum does not match its bytes never lands
    checked = frank.create_upload("slide", "y.bin", size, checksum_parts=True)
    signed = frank.sign_parts(checked["uploadId"], [(1, hashlib.sha256(b"other").hexdigest())])
    part = signed["parts"][0]
    assert part["headers"]["x-amz-checksum-sha256"]
    reply = requests.put(part["url"], data=data[: 5 * MiB], headers=part["headers"], timeout=30)
    assert reply.status_code == 400 and "BadDigest" in reply.text

    real = {p["partNumber"]: p["etag"] for p in held(frank, upload_id).values()}
    done = frank.complete(upload_id, [{"partNumber": n, "etag": e} for n, e in real.items()])
    assert done["state"] in ("pending", "ready")
    assert frank.wait_for_upload(upload_id)["state"] == "ready"
    again = frank.complete(upload_id, None)
    assert again["state"] == "ready", "completing twice is harmless"


def test_single_put_uploads_have_no_parts(client_for: Callable[..., Client]) -> None:
    gina = client_for("gina")
    created = gina.create_upload("slide", "small.bin", 1000)
    with pytest.raises(ApiError) as caught:
        gina.sign_parts(created["uploadId"], [])
    assert (caught.value.status, caught.value.code) == (409, "NOT_MULTIPART")
    with pytest.raises(ApiError) as caught:
        gina.complete(created["uploadId"])
    assert (caught.value.status, caught.value.code) == (409, "NOT_UPLOADED")
