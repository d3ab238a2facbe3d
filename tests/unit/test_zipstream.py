"""Unpacking dzsave's ZIP stream while it is written."""

from __future__ import annotations

import io
import random
import struct
import zipfile

import pytest
import pyvips

from slipway.zipstream import ZipStream, ZipStreamError


def feed(data: bytes, piece: int) -> dict[str, bytes]:
    got: dict[str, bytes] = {}

    def entry(name: str, content: bytes, offset: int) -> None:
        assert data[offset : offset + len(content)] == content, "offset points at the data"
        got[name] = content

    stream = ZipStream(entry)
    for i in range(0, len(data), piece):
        stream.write(data[i : i + piece])
    assert stream.finished
    return got


def dzsave_zip(width: int, height: int) -> bytes:
    image = pyvips.Image.gaussnoise(width, height, sigma=50).cast("uchar")
    out = bytearray()

    def write(chunk: bytes) -> int:
        out.extend(chunk)
        return len(chunk)

    target = pyvips.TargetCustom()
    target.on_write(write)
    target.on_end(lambda: 0)
    image.dzsave_target(target, basename="slide", container="zip", compression=0)
    return bytes(out)


@pytest.mark.parametrize("piece", [1, 777, 1 << 20])
def test_dzsave_stream_matches_zipfile(piece: int) -> None:
    data = dzsave_zip(900, 700)
    reference = zipfile.ZipFile(io.BytesIO(data))
    got = feed(data, piece)
    assert set(got) == set(reference.namelist())
    assert all(got[name] == reference.read(name) for name in got)


class Unseekable(io.RawIOBase):
    """Makes zipfile stream entries with data descriptors, as dzsave does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:  # type: ignore[override]
        self.data += chunk
        return len(chunk)


@pytest.mark.parametrize("streamed", [True, False])
def test_a_descriptor_signature_inside_the_data_is_not_an_end(streamed: bool) -> None:
    out: Unseekable | io.BytesIO = Unseekable() if streamed else io.BytesIO()
    rng = random.Random(5)
    entries = {f"e{i}": b"PK\x07\x08" + rng.randbytes(300) + b"PK\x07\x08" * 3 for i in range(5)}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, content in entries.items():
            with archive.open(name, "w") as member:
                member.write(content)
    data = bytes(out.data) if isinstance(out, Unseekable) else out.getvalue()
    descriptor_flag = struct.unpack_from("<H", data, 6)[0] & 0x08
    assert bool(descriptor_flag) == streamed
    assert feed(data, 97) == entries


def test_compressed_entries_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"x" * 1000)
    with pytest.raises(ZipStreamError, match="stored"):
        feed(buffer.getvalue(), 64)
