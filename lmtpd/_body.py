"""Incremental decoding of a DATA body: end marker and dot-unstuffing (RFC 5321 §4.5.2).

Only ``CRLF "." CRLF`` ends a message; the body starts logically after a CRLF, so
a first line of just ``"."`` ends it too. Lines are CRLF-delimited: a bare LF or
CR never starts a line, so ``LF "." LF``, ``CRLF "." LF`` and ``LF "." CRLF`` are
content (the SMTP smuggling vectors). A leading dot is removed from a line when
other characters follow it on that line; a dot directly followed by a bare LF or
CR is kept, so such malformed input is stored exactly as it arrived.

The scan jumps between ``CRLF "."`` occurrences with ``bytes.find``, so ordinary
content is copied in large slices and never walked byte by byte in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_CR: Final = 0x0D
_LF: Final = 0x0A
_DOT: Final = 0x2E
_LINE_THEN_DOT: Final = b"\r\n."


@dataclass(frozen=True, slots=True)
class Decoded:
    """Message bytes decoded from the front of the buffer; ``consumed`` buffer bytes
    were used up (the rest must be kept for the next call)."""

    content: bytes
    consumed: int
    ended: bool


class DotDecoder:
    """Holds the only state that survives between calls: whether the next byte
    starts a line."""

    __slots__ = ("_line_start",)

    def __init__(self) -> None:
        self._line_start = True

    def decode(self, buf: bytes | bytearray) -> Decoded:
        """Decode as much of ``buf`` as can be decided without more input.

        At most two trailing bytes (a partial ``CRLF "."``) or a partial dot line
        are left unconsumed.
        """
        pieces: list[bytes] = []
        pos, size = 0, len(buf)
        with memoryview(buf) as view:
            while pos < size:
                if self._line_start and buf[pos] == _DOT:
                    left = size - pos
                    if left < 2 or (buf[pos + 1] == _CR and left < 3):
                        break  # cannot tell yet: end marker, stuffed dot or content
                    after = buf[pos + 1]
                    if after == _CR and buf[pos + 2] == _LF:
                        return Decoded(b"".join(pieces), pos + 3, ended=True)
                    if after not in (_CR, _LF):
                        pos += 1  # dot-unstuffing
                self._line_start = False
                hit = buf.find(_LINE_THEN_DOT, pos)
                if hit < 0:
                    stop = max(pos, size - _partial_marker(buf))
                    pieces.append(view[pos:stop].tobytes())
                    pos = stop
                    break
                pieces.append(view[pos : hit + 2].tobytes())
                pos = hit + 2
                self._line_start = True
        return Decoded(b"".join(pieces), pos, ended=False)


def _partial_marker(buf: bytes | bytearray) -> int:
    """How many trailing bytes could begin a ``CRLF "."`` completed by later input."""
    if buf.endswith(b"\r\n"):
        return 2
    if buf.endswith(b"\r"):
        return 1
    return 0
