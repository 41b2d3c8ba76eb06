"""Incremental decoding of a DATA body: end marker and dot-unstuffing (RFC 5321 §4.5.2).

Only ``CRLF "." CRLF`` ends a message; the body starts logically after a CRLF, so
a first line of just ``"."`` ends it too. Lines are CRLF-delimited: a bare LF or
CR never starts a line, so ``LF "." LF``, ``CRLF "." LF`` and ``LF "." CRLF`` are
content (the SMTP smuggling vectors). A leading dot is removed from a line when
other characters follow it on that line; a dot directly followed by a bare LF or
CR is kept, so such malformed input is stored exactly as it arrived.

Decoding is done by C-level searches over whole buffers (``bytes.find`` for the
end marker, one regular-expression substitution for stuffed dots), so content is
never walked line by line or byte by byte in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_CR: Final = 0x0D
_LF: Final = 0x0A
_DOT: Final = 0x2E
_END_MARKER: Final = b"\r\n.\r\n"
# A dot after CRLF goes unless a line break follows it (then it is kept as content).
_STUFFED_DOT: Final = re.compile(rb"\r\n\.(?![\r\n])")


@dataclass(frozen=True, slots=True)
class Decoded:
    """Message bytes decoded from the front of the buffer; ``consumed`` buffer bytes
    were used up (the rest must be kept for the next call)."""

    content: bytes
    consumed: int
    ended: bool


class DotDecoder:
    """Holds the only state that survives between calls: whether the next byte
    starts the body (which begins logically after a CRLF)."""

    __slots__ = ("_at_start",)

    def __init__(self) -> None:
        self._at_start = True

    def decode(self, buf: bytes | bytearray) -> Decoded:
        """Decode as much of ``buf`` as can be decided without more input.

        At most four trailing bytes (a partial ``CRLF "." CRLF``) are left unconsumed.
        """
        pos = 0
        if self._at_start:
            if not buf or buf[0] != _DOT:
                self._at_start = not buf
            elif len(buf) < 2 or (buf[1] == _CR and len(buf) < 3):
                return Decoded(b"", 0, ended=False)  # "." or ".\r": not decidable yet
            elif buf[1] == _CR and buf[2] == _LF:
                return Decoded(b"", 3, ended=True)
            else:
                pos = 1 if buf[1] not in (_CR, _LF) else 0
                self._at_start = False
        end = buf.find(_END_MARKER, pos)
        if end >= 0:
            return Decoded(_unstuff(buf, pos, end + 2), end + len(_END_MARKER), ended=True)
        stop = max(pos, len(buf) - _partial_marker(buf))
        return Decoded(_unstuff(buf, pos, stop), stop, ended=False)


def _unstuff(buf: bytes | bytearray, start: int, stop: int) -> bytes:
    with memoryview(buf) as view:
        region = view[start:stop].tobytes()
    if b"\r\n." not in region:
        return region
    return _STUFFED_DOT.sub(b"\r\n", region)


def _partial_marker(buf: bytes | bytearray) -> int:
    """How many trailing bytes could begin ``CRLF "." CRLF`` completed by later input."""
    for size in (4, 3, 2, 1):
        if buf.endswith(_END_MARKER[:size]):
            return size
    return 0
