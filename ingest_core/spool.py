"""Message spool: bytes as received, hashed while they stream in.

Memory holds at most ``threshold`` bytes of a message; beyond that the bytes go to
an anonymous temporary file. ``sha256`` names the exact bytes; ``content_sha256``
skips the leading block of trace fields (docs/contracts.md#durable-accept) so that
a copy which differs only in the ``Received:`` lines our own edge prepends is
recognised as the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from typing import BinaryIO

TRACE_FIELDS = frozenset(
    {
        b"received",
        b"return-path",
        b"delivered-to",
        b"x-original-to",
        b"received-spf",
        b"authentication-results",
    }
)
_MAX_FIELD_NAME = 80


def _is_trace_field(name: bytes) -> bool:
    lowered = name.strip().lower()
    return lowered in TRACE_FIELDS or lowered.startswith(b"arc-")


class _ContentHasher:
    """Streaming sha256 over a message minus its leading trace fields.

    States: ``start`` (at the beginning of a header line, deciding), ``skip``
    (inside a trace field, dropping bytes up to the end of its line), ``pass``
    (everything from here on is hashed).
    """

    __slots__ = ("_digest", "_pending", "_state")

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._state = "start"
        self._pending = bytearray()

    def update(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._state == "pass":
                self._digest.update(data[pos:] if pos else data)
                return
            if self._state == "skip":
                newline = data.find(b"\n", pos)
                if newline < 0:
                    return
                pos = newline + 1
                self._state = "start"
                continue
            # start: collect enough of the line to decide what it is
            self._pending += data[pos:]
            pos = len(data)
            self._decide()

    def _decide(self) -> None:
        while self._state == "start" and self._pending:
            first = bytes(self._pending[:1])
            if first in (b" ", b"\t"):
                # a continuation line directly after a skipped trace field
                self._skip_pending_line()
                continue
            colon = self._pending.find(b":")
            newline = self._pending.find(b"\n")
            if colon >= 0 and (newline < 0 or colon < newline) and colon <= _MAX_FIELD_NAME:
                if _is_trace_field(bytes(self._pending[:colon])):
                    self._skip_pending_line()
                    continue
            elif newline < 0 and len(self._pending) <= _MAX_FIELD_NAME:
                return  # need more bytes to decide
            self._state = "pass"
            self._digest.update(self._pending)
            self._pending.clear()

    def _skip_pending_line(self) -> None:
        newline = self._pending.find(b"\n")
        if newline < 0:
            self._pending.clear()
            self._state = "skip"
        else:
            del self._pending[: newline + 1]

    def hexdigest(self) -> str:
        if self._state == "start" and self._pending:
            self._digest.update(self._pending)
            self._pending.clear()
        return self._digest.hexdigest()


class Spool:
    """A finished message: exact bytes, their size and both hashes."""

    __slots__ = ("_buffer", "_path", "content_sha256", "sha256", "size")

    def __init__(
        self,
        *,
        size: int,
        sha256: str,
        content_sha256: str,
        buffer: bytes | None = None,
        path: str | None = None,
    ) -> None:
        self.size = size
        self.sha256 = sha256
        self.content_sha256 = content_sha256
        self._buffer = buffer
        self._path = path

    @classmethod
    def from_bytes(cls, data: bytes) -> Spool:
        writer = SpoolWriter(threshold=max(len(data), 1))
        writer.write(data)
        return writer.finish()

    def open(self) -> BinaryIO:
        """A fresh reader positioned at the first byte."""
        if self._path is not None:
            return open(self._path, "rb")
        return io.BytesIO(self._buffer or b"")

    @property
    def in_memory(self) -> bool:
        return self._path is None

    def discard(self) -> None:
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None
        self._buffer = b""


class SpoolWriter:
    """Accumulates message bytes; spills to a temporary file past ``threshold``."""

    def __init__(self, *, threshold: int = 1 << 20, directory: str | None = None) -> None:
        self._threshold = threshold
        self._directory = directory
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self._path: str | None = None
        self._size = 0
        self._sha = hashlib.sha256()
        self._content = _ContentHasher()

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        self._sha.update(data)
        self._content.update(data)
        if self._file is None and len(self._memory) + len(data) <= self._threshold:
            self._memory += data
            return
        if self._file is None:
            fd, self._path = tempfile.mkstemp(prefix="lmtp-", suffix=".eml", dir=self._directory)
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._memory)
            self._memory = bytearray()
        self._file.write(data)

    def finish(self) -> Spool:
        if self._file is not None:
            self._file.close()
            self._file = None
            return Spool(
                size=self._size,
                sha256=self._sha.hexdigest(),
                content_sha256=self._content.hexdigest(),
                path=self._path,
            )
        return Spool(
            size=self._size,
            sha256=self._sha.hexdigest(),
            content_sha256=self._content.hexdigest(),
            buffer=bytes(self._memory),
        )

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None
        self._memory = bytearray()
