"""Content addressing cannot lie (issue 9, items 1, 4, 5, 6): a blob holds exactly the
bytes its key names, whoever writes to an upload's URL and whenever; the sweeper neither
deletes a blob being recorded nor starves newer uploads; a dead verifier's lease expires.

Races are made deterministic: the test process verifies (the stack's own verifier is kept
out by a lease the test holds) and injects the other party at the exact step."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
import requests

from slipway import blobs, digests, storage, sweeper, uploads
from tests.integration.conftest import library_settings
from tests.support import run_cli, settled_upload, wait_for

OWNER = "blob-tester"
TEST_VERIFIER = "test-verifier"


def create(data: bytes, *, declare: bool = False) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest() if declare else None
    return uploads.create(OWNER, uploads.NewUpload("telemetry", "b.csv", len(data), sha256=sha))


def put(created: dict[str, Any], data: bytes) -> requests.Response:
    return requests.put(created["url"], data=data, headers=created["headers"], timeout=30)


def blob_bytes(sha256: bytes) -> bytes:
    return storage.read_bytes(os.environ["SLIPWAY_DATA_BUCKET"], storage.blob_key(sha256))


def incoming_versions(upload_id: str) -> list[Any]:
    reply = storage.client().list_object_versions(
        Bucket=os.environ["SLIPWAY_UPLOADS_BUCKET"], Prefix=storage.incoming_key(UUID(upload_id))
    )
    return [*reply.get("Versions", []), *reply.get("DeleteMarkers", [])]


def hold_lease(conn: psycopg.Connection[Any], upload_id: str, holder: str, seconds: int) -> None:
    conn.execute(
        "INSERT INTO upload_checks (upload_id, holder, lease_expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s))"
        " ON CONFLICT (upload_id) DO UPDATE SET holder = EXCLUDED.holder,"
        " lease_expires_at = EXCLUDED.lease_expires_at",
        (upload_id, holder, seconds),
    )


@pytest.fixture
def we_verify(monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]) -> Any:
    """Returns `reserve(upload_id)`: the stack's verifier backs off that upload (the test's
    lease is live) and this process's `uploads.verify` holds the same lease."""
    monkeypatch.setattr(uploads, "_holder", lambda: TEST_VERIFIER)

    def reserve(upload_id: str) -> None:
        hold_lease(conn, upload_id, TEST_VERIFIER, 600)

    return reserve


def test_a_single_put_url_writes_its_key_once() -> None:
    a, b = os.urandom(5000), os.urandom(5000)
    created = create(a)
    assert created["headers"]["If-None-Match"] == "*"
    assert put(created, a).status_code == 200
    second = put(created, b)
    assert second.status_code == 412, second.text
    without = requests.put(
        created["url"], data=b, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert without.status_code == 403, "the If-None-Match header is signed: it cannot be dropped"
    upload = settled_upload(created["uploadId"])
    assert upload.state == "ready"
    assert upload.sha256 == hashlib.sha256(a).digest()
    assert blob_bytes(hashlib.sha256(a).digest()) == a


def test_bytes_replaced_between_hash_and_copy_never_reach_the_blob(
    we_verify: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack of issue 9 item 1, at the exact step: bytes B replace the incoming object
    after A was hashed and before it is copied (here with full rights, past the URL's
    If-None-Match). The blob must hold A; B must not survive anywhere."""
    a, b = os.urandom(6000), os.urandom(6000)
    created = create(a)
    we_verify(created["uploadId"])
    assert put(created, a).status_code == 200
    key = storage.incoming_key(UUID(created["uploadId"]))
    real_store = blobs.store

    def replace_then_store(source: blobs.Source, found: digests.Digests) -> None:
        storage.put_bytes(os.environ["SLIPWAY_UPLOADS_BUCKET"], key, b, "text/csv")
        real_store(source, found)

    monkeypatch.setattr(blobs, "store", replace_then_store)
    upload = uploads.verify(UUID(created["uploadId"]), "test")
    assert upload is not None and upload.state == "ready"
    assert upload.sha256 == hashlib.sha256(a).digest()
    assert blob_bytes(upload.sha256) == a
    assert incoming_versions(created["uploadId"]) == [], "no version of A or B is left"


def test_an_unrecorded_blob_holding_other_bytes_is_replaced(we_verify: Any) -> None:
    """What the old bug left behind: an object at A's blob key holding B. Deduplication
    trusts only recorded blobs, and the copy replaces the lie."""
    a, b = os.urandom(4000), os.urandom(4000)
    sha_a = hashlib.sha256(a).digest()
    storage.put_bytes(os.environ["SLIPWAY_DATA_BUCKET"], storage.blob_key(sha_a), b, "x/y")
    created = create(a)
    we_verify(created["uploadId"])
    assert put(created, a).status_code == 200
    upload = uploads.verify(UUID(created["uploadId"]), "test")
    assert upload is not None and upload.state == "ready" and not upload.deduplicated
    assert blob_bytes(sha_a) == a


def test_a_second_owner_deduplicates_onto_verified_bytes_only() -> None:
    data = os.urandom(3000)
    first, second = create(data), create(data)
    for created in (first, second):
        assert put(created, data).status_code == 200
    ready = [settled_upload(c["uploadId"]) for c in (first, second)]
    assert [u.state for u in ready] == ["ready", "ready"]
    assert sorted(u.deduplicated for u in ready) == [False, True]
    assert blob_bytes(hashlib.sha256(data).digest()) == data


def test_an_orphan_sweep_between_copy_and_record_loses_nothing(
    we_verify: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 4: the sweeper deletes the just-copied, not yet recorded blob. Once it
    is recorded, verification puts it back before anything reads it."""
    data = os.urandom(7000)
    created = create(data)
    we_verify(created["uploadId"])
    assert put(created, data).status_code == 200
    real_store = blobs.store
    swept: list[bool] = []

    def store_then_sweep(source: blobs.Source, found: digests.Digests) -> None:
        real_store(source, found)
        later = datetime.now(UTC) + timedelta(hours=1)  # as if the grace period had passed
        swept.append(blobs.delete_if_unrecorded(storage.blob_key(found.sha256), later))

    monkeypatch.setattr(blobs, "store", store_then_sweep)
    upload = uploads.verify(UUID(created["uploadId"]), "test")
    # the sweep deleted the unrecorded blob in the window; verification stored it again
    # once recorded (that store went through the same hook: a recorded blob is not swept)
    assert swept == [True, False]
    assert upload is not None and upload.state == "ready"
    assert blob_bytes(hashlib.sha256(data).digest()) == data
    later = datetime.now(UTC) + timedelta(hours=1)
    assert not blobs.delete_if_unrecorded(storage.blob_key(hashlib.sha256(data).digest()), later)


def test_a_dead_verifiers_lease_expires(conn: psycopg.Connection[Any]) -> None:
    """Issue 9 item 6: a verifier that froze holds a lease, not a session lock: others skip
    the upload until it expires, then settle it."""
    data = os.urandom(2000)
    created = create(data)
    hold_lease(conn, created["uploadId"], "a-frozen-function", 600)
    assert put(created, data).status_code == 200
    assert uploads.verify(UUID(created["uploadId"]), "test") is None
    assert uploads.load(UUID(created["uploadId"])).state == "pending"
    conn.execute(
        "UPDATE upload_checks SET lease_expires_at = now() - interval '1 second'"
        " WHERE upload_id = %s",
        (created["uploadId"],),
    )
    upload = uploads.verify(UUID(created["uploadId"]), "test")
    assert upload is not None and upload.state == "ready"


def test_the_sweeper_takes_turns_and_never_hashes(
    on_scratch_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 5: each run checks the least recently checked pending uploads, so with
    more pending than a run takes, every one gets its turn; bytes found are handed to the
    upload-events queue, never hashed inside the sweeper."""
    waiting = [create(os.urandom(100)) for _ in range(5)]
    arrived = waiting[0]
    assert put(arrived, os.urandom(100)).status_code == 200
    requested: list[UUID] = []
    monkeypatch.setattr(uploads, "request_verification", requested.append)

    def no_hashing(*args: object) -> None:
        raise AssertionError("the sweeper hashed an upload")

    monkeypatch.setattr(digests, "of_chunks", no_hashing)
    checked: list[set[str]] = []
    with psycopg.connect(on_scratch_db, autocommit=True) as scratch:
        for _ in range(3):
            with library_settings(SLIPWAY_NOTIFICATION_GRACE_SECONDS="0"):
                sweeper.check_pending(sweeper.Report(), limit=2)
            rows = scratch.execute(
                "SELECT upload_id FROM upload_checks WHERE checked_at IS NOT NULL"
            ).fetchall()
            checked.append({str(r[0]) for r in rows})
    assert [len(c) for c in checked] == [2, 4, 5]
    assert set(requested) == {UUID(arrived["uploadId"])}


def test_the_blob_scan_resumes_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]
) -> None:
    bucket = os.environ["SLIPWAY_DATA_BUCKET"]
    junk = [storage.blob_key(hashlib.sha256(os.urandom(8)).digest()) for _ in range(3)]
    for key in junk:
        storage.put_bytes(bucket, key, b"unrecorded", "application/octet-stream")
    monkeypatch.setattr(sweeper, "BLOB_SCAN_PAGE", 2)
    total = sum(1 for _ in storage.list_keys(bucket, blobs.PREFIX))
    positions = []
    with library_settings(SLIPWAY_ORPHAN_GRACE_SECONDS="0"):
        for _ in range(total // 2 + 2):
            sweeper.delete_orphans(sweeper.Report())
            row = conn.execute(
                "SELECT value FROM sweeper_state WHERE name = 'blob_scan_after'"
            ).fetchone()
            assert row is not None
            positions.append(row["value"])
    assert positions[0] != "", "a full page leaves the position after its last key"
    assert "" in positions, "the scan starts over after the last key"
    assert all(storage.head(bucket, key) is None for key in junk)


@pytest.fixture
def tampered_blob() -> Iterator[tuple[str, bytes]]:
    """A recorded blob whose stored bytes are changed behind Slipway's back, restored after."""
    data = os.urandom(1500)
    created = create(data)
    assert put(created, data).status_code == 200
    wait_for(lambda: uploads.load(UUID(created["uploadId"])).state == "ready")
    bucket, key = os.environ["SLIPWAY_DATA_BUCKET"], storage.blob_key(hashlib.sha256(data).digest())
    storage.put_bytes(bucket, key, b"not the recorded bytes", "x/y")
    try:
        yield key, data
    finally:
        storage.put_bytes(bucket, key, data, "x/y")


def test_verify_blobs_names_a_blob_that_does_not_hold_its_bytes(
    tampered_blob: tuple[str, bytes], stack: dict[str, str]
) -> None:
    key, _ = tampered_blob
    report = blobs.audit()
    assert [p.key for p in report.problems] == [key]
    assert report.checked >= 1
    result = run_cli("verify", "--blobs", env=os.environ | stack)
    assert result.returncode == 1, result.stdout + result.stderr
    assert key in result.stdout
    sampled = blobs.audit(sample=1)
    assert sampled.checked == 1
