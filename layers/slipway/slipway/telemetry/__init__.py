"""Telemetry: sessions (light, used by the API) and parsing to Parquet (`parse`, heavy)."""

from typing import Protocol


class Readable(Protocol):
    """What the readers need of a byte stream (a file, an S3 body)."""

    def read(self, size: int = -1, /) -> bytes: ...
