"""SHA-256 and BLAKE3 of a byte stream in one pass, in bounded memory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from blake3 import blake3

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Digests:
    sha256: bytes
    blake3: bytes
    size: int


class Hasher:
    """Feed chunks with `update`; both hash functions release the GIL on large chunks."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._blake3 = blake3(max_threads=blake3.AUTO)
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._sha256.update(chunk)
        self._blake3.update(chunk)
        self.size += len(chunk)

    def digests(self) -> Digests:
        return Digests(self._sha256.digest(), self._blake3.digest(), self.size)


def of_chunks(chunks: Iterable[bytes]) -> Digests:
    hasher = Hasher()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.digests()


def of_bytes(data: bytes) -> Digests:
    return of_chunks([data])


def blake3_digest(data: bytes) -> bytes:
    return blake3(data).digest()


def parse_hex_digest(value: str) -> bytes:
    """A 64-hex-digit digest (either case) as 32 bytes; ValueError otherwise (spaces too:
    `bytes.fromhex` would skip them and make a shorter digest)."""
    if not _HEX64.fullmatch(value):
        raise ValueError("a digest is 64 hex digits")
    return bytes.fromhex(value)
