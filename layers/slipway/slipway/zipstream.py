"""Unpack a ZIP archive while it is being written, entry by entry (stored entries only).

libvips' dzsave writes its pyramid to a target as a stream of stored (uncompressed) ZIP
entries, each followed by a data descriptor, so the local header carries no size. An
entry ends at the descriptor whose recorded size equals the bytes read so far *and* whose
CRC-32 matches them, which makes a false match practically impossible.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

LOCAL_HEADER = b"PK\x03\x04"
DESCRIPTOR = b"PK\x07\x08"
CENTRAL_DIRECTORY = b"PK\x01\x02"
_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature … name length, extra length


class ZipStreamError(ValueError):
    pass


class ZipStream:
    """Feed bytes with `write`; `on_entry(name, data, offset)` is called for each whole
    entry, `offset` being where its data starts in the stream."""

    def __init__(self, on_entry: Callable[[str, bytes, int], None]) -> None:
        self.on_entry = on_entry
        self.buffer = bytearray()
        self.consumed = 0  # stream position of buffer[0]
        self.finished = False  # reached the central directory
        self._name: str | None = None
        self._known_size: int | None = None
        self._scan_from = 0

    def write(self, data: bytes) -> None:
        if self.finished:
            return
        self.buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one header or one entry from the buffer; False when it needs more."""
        buf = self.buffer
        if self._name is None:
            if len(buf) < 4:
                return False
            if buf[:4] == CENTRAL_DIRECTORY:
                self.finished = True
                return False
            if len(buf) < _HEADER.size:
                return False
            sig, _, flags, method, _, _, _, csize, _, name_len, extra_len = _HEADER.unpack_from(buf)
            if sig != LOCAL_HEADER:
                raise ZipStreamError("not a ZIP local file header")
            if method != 0:
                raise ZipStreamError("only stored (uncompressed) entries are supported")
            start = _HEADER.size + name_len + extra_len
            if len(buf) < start:
                return False
            name = bytes(buf[_HEADER.size : _HEADER.size + name_len]).decode()
            del buf[:start]
            self.consumed += start
            known = None if flags & 0x08 else csize  # else a descriptor follows the data
            self._name, self._scan_from, self._known_size = name, 0, known
            return True
        if self._known_size is not None:
            if len(buf) < self._known_size:
                return False
            self._emit(self._known_size, 0)
            return True
        return self._find_descriptor()

    def _find_descriptor(self) -> bool:
        buf = self.buffer
        while True:
            at = buf.find(DESCRIPTOR, self._scan_from)
            if at < 0:
                self._scan_from = max(len(buf) - 3, 0)
                return False
            if len(buf) < at + 24:  # room for the ZIP64 form
                self._scan_from = at
                return False
            crc, csize32 = struct.unpack_from("<II", buf, at + 4)
            csize64 = struct.unpack_from("<Q", buf, at + 8)[0]
            for size, tail in ((csize32, 16), (csize64, 24)):
                if size == at and zlib.crc32(buf[:at]) == crc:
                    self._emit(at, tail)
                    return True
            self._scan_from = at + 1

    def _emit(self, size: int, descriptor: int) -> None:
        assert self._name is not None
        data = bytes(self.buffer[:size])
        offset = self.consumed
        del self.buffer[: size + descriptor]
        self.consumed += size + descriptor
        name, self._name = self._name, None
        self.on_entry(name, data, offset)
