"""The request rules stated as patterns (for the OpenAPI document) agree with the checks
that enforce them, and the body reader's depth scan counts what json.loads would."""

from __future__ import annotations

import json
import re
import sys
import unicodedata

import pytest
from pydantic import ValidationError

from slipway import digests, upload_rules, uploads
from slipway.api.http import json_depth_exceeds
from slipway.api.models import CreateUpload
from slipway.errors import SlipwayError

BANNED = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def test_the_filename_pattern_bans_exactly_the_characters_validate_bans() -> None:
    pattern = re.compile(upload_rules.FILENAME)
    assert unicodedata.unidata_version == "15.0.0", "regenerate upload_rules._NOT_IN_NAME"
    wrong = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) != "Cs"  # no JSON text carries one alone
        and bool(pattern.fullmatch(f"a{chr(code)}"))
        == (unicodedata.category(chr(code)) in BANNED or chr(code) in "/\\")
    ]
    assert not wrong, wrong[:20]


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("...", True), (".a", True), ("..a", True), ("a.b", True), ("é😀", True),
     (".", False), ("..", False), ("", False), ("a/b", False), ("a\\b", False),
     ("a\nb", False), ("a\u200bb", False), ("a\u2028", False)],
)  # fmt: skip
def test_the_filename_pattern_and_validate_agree(name: str, ok: bool) -> None:
    assert bool(re.fullmatch(upload_rules.FILENAME, name)) is ok
    new = uploads.NewUpload(kind="slide", filename=name, size=1)
    if ok:
        uploads.validate(new)
    else:
        with pytest.raises(SlipwayError):
            uploads.validate(new)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("application/octet-stream", True), ("image/svs", True), ("text/plain; charset=utf-8", True),
     ("application/vnd.ms-excel", True), ("text/plain\r", False), ("text/plain\n", False),
     ("text/plain\r\nX-Injected: 1", False), ("text/plain; a=\u00e9", False),
     ("t\u00e9xt/plain", False), ("text", False), ("/plain", False)],
)  # fmt: skip
def test_media_types_are_tokens_and_printable_parameters(value: str, ok: bool) -> None:
    assert bool(re.fullmatch(upload_rules.MEDIA_TYPE, value)) is ok
    new = uploads.NewUpload(kind="slide", filename="a", size=1, content_type=value)
    if ok:
        uploads.validate(new)
    else:
        with pytest.raises(SlipwayError):
            uploads.validate(new)


@pytest.mark.parametrize(
    "value",
    ["0a" * 31 + "  ", " " + "0a" * 31 + "0", "0a" * 32 + "\n", "0a" * 16 + " " * 32, "g" * 64],
)
def test_a_digest_is_exactly_64_hex_digits(value: str) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        digests.parse_hex_digest(value)
    assert not re.fullmatch(upload_rules.HEX_DIGEST, value)


def test_a_digest_of_either_case_is_32_bytes() -> None:
    assert digests.parse_hex_digest("aB" * 32) == bytes([0xAB]) * 32


def test_json_integers_may_be_written_as_integral_numbers() -> None:
    assert CreateUpload.model_validate_json('{"kind":"slide","filename":"a","size":2.0}').size == 2
    for size in ('"2"', "true", "2.5"):
        with pytest.raises(ValidationError):
            CreateUpload.model_validate_json(f'{{"kind":"slide","filename":"a","size":{size}}}')


@pytest.mark.parametrize("depth", [1, 5, 32, 33, 200])
def test_the_depth_scan_counts_what_json_nests(depth: int) -> None:
    text = json.dumps({"a": "[[[{{{", "b": json.loads("[" * depth + "]" * depth)})
    assert json_depth_exceeds(text, 32) is (depth + 1 > 32)
    assert not json_depth_exceeds('"' + "[" * 100 + '"', 32), "brackets inside a string"
    assert not json_depth_exceeds(r'["\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', 32)
