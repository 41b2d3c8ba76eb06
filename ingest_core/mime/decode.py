"""Lenient, streaming decoding of one part's body into a file.

The parsed tree keeps each body as the transfer-encoded text; decoding it in
one call would hold the encoded and the decoded copy at once. Here the body is
decoded in slices and written out as it goes, hashed and counted on the way.
Broken encodings never stop extraction: what can be decoded is kept and a note
says what was wrong (the note never quotes the sender's bytes).
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.mime.errors import ManifestLimitExceeded

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import Message

DECODE_SLICE = 1 << 20
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_IGNORABLE = _B64_ALPHABET + b"= \t\r\n"
_B64_NOT_ALPHABET = bytes(range(256)).translate(None, _B64_ALPHABET)


class DecodedBudget:
    """The decoded bytes one message may produce across all its attachments."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise ManifestLimitExceeded(
                f"decoded attachments larger than {self.limit} bytes in total"
            )


@dataclass(slots=True)
class _Sink:
    """Writes decoded bytes out while hashing and counting them."""

    out: BinaryIO
    budget: DecodedBudget
    size: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.budget.take(len(data))
        self.size += len(data)
        self.digest.update(data)
        self.out.write(data)


@dataclass(frozen=True, slots=True)
class DecodedBody:
    size: int
    sha256: str
    notes: tuple[str, ...]


def transfer_encoding(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "")).strip().lower()


def decode_body(part: Message, out: BinaryIO, budget: DecodedBudget) -> DecodedBody:
    """Decode a leaf part's body into ``out``; size, sha256 and notes of the result."""
    payload = raw_payload(part)
    sink = _Sink(out, budget)
    encoding = transfer_encoding(part)
    notes: list[str] = []
    if encoding == "base64":
        notes += _base64(_slices(payload), sink)
    elif encoding == "quoted-printable":
        _quoted_printable(_slices(payload), sink)
    else:
        if encoding not in ("", "7bit", "8bit", "binary"):
            notes.append("unknown transfer encoding: body kept undecoded")
        for chunk in _slices(payload):
            sink.write(chunk)
    return DecodedBody(sink.size, sink.digest.hexdigest(), tuple(notes))


def raw_payload(part: Message) -> str:
    """The body text exactly as the parser stored it.

    ``get_payload()`` is no use here: on a body with 8-bit bytes it first
    encodes the whole body once just to look for them, then re-decodes it with
    the part's charset and *replaces* what does not fit, which corrupts an 8-bit
    or binary attachment. The stored text (ASCII plus surrogate escapes, from
    ``BytesFeedParser``) turns back into the original bytes losslessly.
    """
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str):
        raise TypeError("decode_body takes leaf parts only")
    return payload


def _slices(payload: str) -> Iterator[bytes]:
    """The body as bytes, a slice at a time (the parser keeps 8-bit bytes as
    surrogate escapes; this turns them back into the original bytes)."""
    for start in range(0, len(payload), DECODE_SLICE):
        text = payload[start : start + DECODE_SLICE]
        try:
            yield text.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:  # a tree built in memory may hold real non-ASCII text
            yield text.encode("utf-8", "surrogateescape")


def _base64(chunks: Iterator[bytes], sink: _Sink) -> list[str]:
    invalid = 0
    padded = False
    carry = b""
    for chunk in chunks:
        invalid += len(chunk.translate(None, _B64_IGNORABLE))
        padded = padded or b"=" in chunk
        clean = carry + chunk.translate(None, _B64_NOT_ALPHABET)
        whole = len(clean) - len(clean) % 4
        carry = clean[whole:]
        sink.write(binascii.a2b_base64(clean[:whole]))
    notes = []
    if invalid:
        notes.append(f"base64: {invalid} invalid characters ignored")
    if len(carry) == 1:
        notes.append("base64: truncated, last incomplete byte dropped")
    elif carry:
        sink.write(binascii.a2b_base64(carry + b"=" * (4 - len(carry))))
        if not padded:
            notes.append("base64: truncated or missing padding")
    return notes


def _quoted_printable(chunks: Iterator[bytes], sink: _Sink) -> None:
    """``a2b_qp`` is lenient already (a stray ``=`` stays as it is); slices are
    cut so that no ``=XX`` escape or soft line break is split."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = data.rfind(b"=", max(0, len(data) - 3))
        if cut < 0:
            cut = len(data)
        data, carry = data[:cut], data[cut:]
        sink.write(binascii.a2b_qp(data))
    if carry:
        sink.write(binascii.a2b_qp(carry))
