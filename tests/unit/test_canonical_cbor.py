"""Event payloads are RFC 8949 deterministically encoded CBOR, digested with BLAKE3."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from blake3 import blake3

from slipway.events import canonical_cbor, chain_digest


@pytest.mark.parametrize(
    ("value", "expected_hex"),
    [
        ({"a": 0}, "a1616100"),
        ({"a": 23}, "a1616117"),
        ({"a": 24}, "a161611818"),
        ({"a": 1000000}, "a161611a000f4240"),
        ({"a": -1}, "a1616120"),
        ({"a": 1.5}, "a16161f93e00"),  # shortest float that keeps the value: half
        ({"a": 100000.0}, "a16161fa47c35000"),  # single
        ({"a": 1.1}, "a16161fb3ff199999999999a"),  # double
        ({"a": True, "b": None}, "a26161f56162f6"),
        ({"a": [1, [2, 3]]}, "a161618201820203"),
        ({"a": "ü"}, "a1616162c3bc"),
    ],
)
def test_rfc8949_deterministic_encoding(value: dict[str, object], expected_hex: str) -> None:
    assert canonical_cbor(value).hex() == expected_hex


def test_keys_sorted_bytewise_whatever_the_insertion_order() -> None:
    # encoded keys sort bytewise: "b" (0x61 0x62) before "aa" (0x62 0x61 0x61)
    assert canonical_cbor({"aa": 2, "b": 1}).hex() == "a261620162616102"
    assert canonical_cbor({"b": 1, "aa": 2}) == canonical_cbor({"aa": 2, "b": 1})
    nested_1 = {"z": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 0}
    nested_2 = {"a": 0, "z": {"x": [{"p": 2, "q": 1}], "y": 1}}
    assert canonical_cbor(nested_1) == canonical_cbor(nested_2)


def test_round_trip_is_the_same_json_shaped_value() -> None:
    payload = {"uploadId": "0b7c…", "size": 2**40, "ratio": 0.25, "parts": [1, 2], "x": None}
    assert cbor2.loads(canonical_cbor(payload)) == payload


@pytest.mark.parametrize(
    "bad",
    [
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"raw": b"\x00"},
        {"x": math.nan},
        {"x": math.inf},
        {1: "non-text key"},
        {"nested": [{"ok": 1}, {"bad": {1, 2}}]},
    ],
)
def test_only_json_shaped_payloads(bad: dict[object, object]) -> None:
    with pytest.raises(ValueError, match="payload"):
        canonical_cbor(bad)  # type: ignore[arg-type]


def test_chain_digest_covers_every_field() -> None:
    moment = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    base: tuple[Any, ...] = (
        7,
        moment,
        "v1.upload.ready",
        "upload",
        None,
        "fn:x",
        bytes(32),
        bytes(32),
    )
    reference = chain_digest(*base)
    assert len(reference) == 32
    for i, changed in enumerate(
        [
            8,
            moment.replace(microsecond=123457),
            "v1.upload.failed",
            "job",
            None,
            "fn:y",
            b"\x01" * 32,
            b"\x02" * 32,
        ]
    ):
        if i == 4:
            continue  # subject id: covered below
        variant: list[Any] = list(base)
        variant[i] = changed
        assert chain_digest(*variant) != reference, f"field {i} is not covered"
    import uuid

    with_subject: list[Any] = list(base)
    with_subject[4] = uuid.UUID(int=1)
    assert chain_digest(*with_subject) != reference


def test_payload_digest_is_blake3_of_the_stored_bytes() -> None:
    payload = {"k": "v"}
    assert blake3(canonical_cbor(payload)).digest() == blake3(bytes.fromhex("a1616b6176")).digest()
