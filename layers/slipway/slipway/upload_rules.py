"""What an upload request may be: its kinds, the S3 multipart limits and the patterns its
fields must match. `uploads.validate` enforces them and the API's models state them in the
OpenAPI document, so a request the document allows is never refused as bad input.

Constants only (no AWS, no database): the read-side functions import the models without
loading boto3 (docs/benchmarks.md, cold start).
"""

from __future__ import annotations

import re

from slipway.config import MiB

KINDS = ("slide", "telemetry")
S3_MAX_PARTS = 10_000
S3_MIN_PART = 5 * MiB
# A media type: RFC 9110 tokens, then parameters of printable ASCII (never CR or LF).
MEDIA_TYPE = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+/[A-Za-z0-9!#$%&'*+.^_`|~-]+( *;[ -~]{0,200})?$"
CONTENT_TYPE = re.compile(MEDIA_TYPE)
# The characters a filename may not hold: `/`, `\` and the Unicode categories Cc, Cf,
# Zl and Zp (of Unicode 15.0, Python 3.12; tests/unit/test_request_patterns.py checks them).
_NOT_IN_NAME = (
    r"/\\\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891"
    r"\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    r"\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0001\U000e0020-\U000e007f"
)
_NAME_CHAR, _NAME_START = f"[^{_NOT_IN_NAME}]", f"[^.{_NOT_IN_NAME}]"
# A bare name (not `.` or `..`); the 255-byte limit is checked apart (a pattern cannot).
FILENAME = rf"^(?:{_NAME_START}{_NAME_CHAR}*|\.(?:{_NAME_START}{_NAME_CHAR}*|\.{_NAME_CHAR}+))$"
HEX_DIGEST = r"^[0-9a-fA-F]{64}$"
