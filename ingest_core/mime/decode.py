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
import re
import tempfile
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
_B64_NOT_DATA = bytes(range(256)).translate(None, _B64_ALPHABET + b"=")
UUENCODE = frozenset({"x-uuencode", "x-uue", "uuencode", "uue"})
_UU_BEGIN = re.compile(rb"begin(?:-base64)? +[0-7]{1,4} +(.*)")


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
    filename: str | None = None  # the name on a uuencoded body's ``begin`` line


def transfer_encoding(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "")).strip().lower()


def decode_body(
    part: Message, out: BinaryIO, budget: DecodedBudget, *, trim_line_end: bool = False
) -> DecodedBody:
    """Decode a leaf part's body into ``out``; size, sha256 and notes of the result.
    ``trim_line_end``: one final line end is not the body's."""
    payload = raw_payload(part)
    if trim_line_end:
        payload = payload.removesuffix("\n").removesuffix("\r")
    return decode_chunks(transfer_encoding(part), _slices(payload), out, budget)


def decode_chunks(
    encoding: str, chunks: Iterator[bytes], out: BinaryIO, budget: DecodedBudget
) -> DecodedBody:
    """Decode transfer-encoded bytes, given in slices, into ``out``."""
    sink = _Sink(out, budget)
    notes: list[str] = []
    filename = None
    if encoding == "base64":
        notes += _base64(chunks, sink)
    elif encoding == "quoted-printable":
        _quoted_printable(chunks, sink)
    elif encoding in UUENCODE:
        filename = _uudecode(chunks, sink, notes)
    else:
        if encoding not in ("", "7bit", "8bit", "binary"):
            notes.append("unknown transfer encoding: body kept undecoded")
        for chunk in chunks:
            sink.write(chunk)
    return DecodedBody(sink.size, sink.digest.hexdigest(), tuple(notes), filename)


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
    """Lenient base64: characters outside the alphabet are skipped, and padding
    ends a blob, so several blobs written one after the other (padding in the
    middle) each decode as they were encoded, as mail readers decode them."""
    invalid = 0
    padded = False
    dropped = 0
    carry = b""
    for chunk in chunks:
        invalid += len(chunk.translate(None, _B64_IGNORABLE))
        data = carry + chunk.translate(None, _B64_NOT_DATA)
        *blobs, carry = data.split(b"=")
        for blob in blobs:
            if blob:
                padded = True
                dropped += _write_blob(blob, sink)
        whole = len(carry) - len(carry) % 4
        sink.write(binascii.a2b_base64(carry[:whole]))
        carry = carry[whole:]
    notes = []
    if invalid:
        notes.append(f"base64: {invalid} invalid characters ignored")
    if len(carry) == 1 or dropped:
        notes.append("base64: truncated, last incomplete byte dropped")
    if carry:
        _write_blob(carry, sink)
        if not padded:
            notes.append("base64: truncated or missing padding")
    return notes


def _write_blob(blob: bytes, sink: _Sink) -> int:
    """Decode the end of one blob (its padding removed); 1 if a lone last
    character had to be dropped."""
    whole = len(blob) - len(blob) % 4
    sink.write(binascii.a2b_base64(blob[:whole]))
    rest = blob[whole:]
    if len(rest) == 1:
        return 1
    if rest:
        sink.write(binascii.a2b_base64(rest + b"=" * (4 - len(rest))))
    return 0


def _uudecode(chunks: Iterator[bytes], sink: _Sink, notes: list[str]) -> str | None:
    """uuencode, line by line (the ``uu`` module is gone from Python 3.13):
    ``begin MODE NAME``, data lines, ``end``. Lines that do not decode are
    skipped with a note; a body without ``begin`` is kept undecoded."""
    lines = _lines(chunks)
    filename = None
    with tempfile.SpooledTemporaryFile(max_size=DECODE_SLICE) as before:
        for line in lines:
            match = _UU_BEGIN.fullmatch(line.rstrip(b"\r\n \t"))
            if match is not None:
                filename = match.group(1).decode("utf-8", "replace") or None
                break
            before.write(line)
        else:
            notes.append("uuencode: no begin line: body kept undecoded")
            before.seek(0)
            while chunk := before.read(DECODE_SLICE):
                sink.write(chunk)
            return None
    bad = 0
    ended = False
    for line in lines:
        data = line.rstrip(b"\r\n")
        if data.strip() == b"end":
            ended = True
            break
        if not data:
            continue
        decoded = _uu_line(data)
        if decoded is None:
            bad += 1
        else:
            sink.write(decoded)
    if bad:
        notes.append(f"uuencode: {bad} lines could not be decoded")
    if not ended:
        notes.append("uuencode: no end line: truncated")
    return filename


def _uu_line(data: bytes) -> bytes | None:
    try:
        return binascii.a2b_uu(data)
    except binascii.Error:
        # encoders that pad lines with extra characters: keep what the length byte says
        length = (((data[0] - 32) & 63) * 4 + 5) // 3
        try:
            return binascii.a2b_uu(data[:length])
        except binascii.Error:
            return None


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a sliced body, with their line ends."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        lines = data.splitlines(keepends=True)
        carry = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        yield from lines
    if carry:
        yield carry


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
