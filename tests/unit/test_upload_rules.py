"""Request validation and multipart sizing (no servers)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from slipway import config, storage, upload_rules, uploads
from slipway.config import GiB, MiB
from slipway.errors import SlipwayError


@pytest.fixture(autouse=True)
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLIPWAY_PART_SIZE", "SLIPWAY_MAX_UPLOAD_SIZE", "SLIPWAY_UPLOADS_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    config.settings.cache_clear()


def new(**overrides: object) -> uploads.NewUpload:
    fields: dict[str, object] = {"kind": "slide", "filename": "slide.svs", "size": 10}
    return uploads.NewUpload(**(fields | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "video"}, "kind must be one of"),
        ({"filename": ""}, "1 to 255 bytes"),
        ({"filename": "é" * 128}, "1 to 255 bytes"),
        ({"filename": "../etc/passwd"}, "without path parts"),
        ({"filename": "a/b.tif"}, "without path parts"),
        ({"filename": "a\\b.tif"}, "without path parts"),
        ({"filename": ".."}, "without path parts"),
        ({"filename": "a\x00b"}, "control characters"),
        ({"filename": "line\nbreak"}, "control characters"),
        ({"filename": "bidi\u202etxt.exe"}, "control characters"),
        ({"size": 0}, "size must be between 1"),
        ({"size": -5}, "size must be between 1"),
        ({"size": 20 * GiB + 1}, "size must be between 1"),
        ({"content_type": "not a type"}, "contentType"),
        ({"sha256": "abc"}, "64 hexadecimal"),
        ({"sha256": "zz" * 32}, "64 hexadecimal"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(change: dict[str, object], message: str) -> None:
    with pytest.raises(SlipwayError, match=message) as caught:
        uploads.validate(new(**change))
    assert caught.value.status == 400


def test_good_requests_pass() -> None:
    assert uploads.validate(new(filename="Slide 01 (H&E).svs")) is None
    assert uploads.validate(new(sha256="AB" * 32)) == bytes.fromhex("ab" * 32)
    assert uploads.validate(new(size=20 * GiB, content_type="image/tiff; x=1")) is None


def test_twenty_gib_fits_the_part_limit() -> None:
    assert uploads.part_size_for(20 * GiB) == 64 * MiB  # 320 parts
    size = 2 * 1024 * GiB  # far beyond: the part size grows in whole MiB
    part = uploads.part_size_for(size)
    assert part % MiB == 0 and -(-size // part) <= upload_rules.S3_MAX_PARTS


def test_object_keys_never_contain_the_filename() -> None:
    upload_id = uuid4()
    assert storage.incoming_key(upload_id) == f"incoming/{upload_id}"
    assert (
        uploads.upload_id_from_key(config.settings().uploads_bucket, f"incoming/{upload_id}")
        == upload_id
    )
    assert uploads.upload_id_from_key("other-bucket", f"incoming/{upload_id}") is None
    assert uploads.upload_id_from_key(config.settings().uploads_bucket, "incoming/x") is None
    assert storage.blob_key(bytes.fromhex("ab12" + "00" * 30)).startswith("blobs/sha256/ab/12/")
