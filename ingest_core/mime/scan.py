"""A cheap structure scan that runs beside the stdlib parser and stops it early.

The stdlib's ``BytesFeedParser`` builds one object per part and recurses once
per nesting level, so 100,000 parts or 1,000 levels cost seconds or end in a
``RecursionError`` before any check on the finished tree could run. This
scanner sees each chunk first and keeps an *upper bound* of what the parser
will build:

* header blocks are read like the parser reads them (field lines, folded
  continuations, a blank or non-field line ends the block); the first
  ``Content-Type`` field of a block is parsed with the stdlib's own header
  parser, so boundaries written in RFC 2231 form are seen exactly as the real
  parser sees them;
* a ``multipart/*`` with a boundary pushes a frame, a ``message/*`` pushes one
  and starts the inner message's header block, ``message/delivery-status``
  counts its blank-line separated blocks (and up to two levels for a block
  that carries a Content-Type of its own);
* a body line ``--boundary`` (or ``--boundary--``) of any open frame closes
  the frames above it, as the parser does, and counts a part.

Lines split on CR, LF and CRLF like the parser's. Only the first
``LINE_CAP`` bytes of a line are kept (a 30 MB base64 line costs nothing);
where that loses information the scanner errs on the side of counting more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

from ingest_core.mime.errors import MalformedMessage, ManifestLimitExceeded

LINE_CAP = 65_536
_BOUNDARY_CAP = LINE_CAP - 8
# the parser's own header-line test (email.feedparser.headerRE), minus continuations
_FIELD_LINE = re.compile(rb"From |[\041-\071\073-\176]*:")


@dataclass(slots=True)
class _Frame:
    kind: str  # "multipart" | "message" | "dsn"
    boundary: bytes | None = None
    digest: bool = False


def _content_type(lines: list[bytes], default: str) -> tuple[str, str | None]:
    """(content type, boundary) as the stdlib derives them from this field."""
    header = BytesHeaderParser(policy=policy.default).parsebytes(b"\r\n".join(lines) + b"\r\n\r\n")
    header.set_default_type(default)
    try:
        return header.get_content_type(), header.get_boundary()
    except Exception as exc:  # the header parser has raised on hostile input before
        raise MalformedMessage("unparseable Content-Type header") from exc


def _boundary_bytes(boundary: str) -> bytes | None:
    try:
        encoded = boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return None  # the parser compares against ASCII lines: it can never match
    return encoded[:_BOUNDARY_CAP]


class StructureScanner:
    """Feed it the raw bytes; it raises ``ManifestLimitExceeded`` as soon as the
    message holds more parts or deeper nesting than allowed."""

    def __init__(self, *, max_parts: int, max_depth: int, max_lines: int | None = None) -> None:
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.max_lines = max_lines
        self.lines = 0
        self.parts = 1
        self.depth = 0
        self.fed = 0
        self._stack: list[_Frame] = []
        self._in_headers = True
        self._digest_child = False
        self._ctype: list[bytes] | None = None
        self._ctype_open = False
        self._ctype_size = 0
        self._carry: bytes | None = None
        self._carry_truncated = False
        self._pending_cr = False
        self._skip: bytes | None = None

    # -- byte level -------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.fed += len(data)
        if self._pending_cr:
            self._pending_cr = False
            if data.startswith(b"\n"):
                data = data[1:]
        if not data:
            return
        self._pending_cr = data.endswith(b"\r")
        lines = data.splitlines()
        self.lines += len(lines)
        if self.max_lines is not None and self.lines > self.max_lines:
            # The stdlib parser keeps each body line as its own string (about 60
            # bytes of overhead a line): a flood of short lines is what exhausts it.
            raise ManifestLimitExceeded(f"too many lines: more than {self.max_lines}")
        tail = None if data.endswith((b"\n", b"\r")) else lines.pop()
        for line in lines:
            truncated = len(line) > LINE_CAP
            if self._carry is not None:
                line = self._carry + line[:LINE_CAP]
                truncated = self._carry_truncated or len(line) > LINE_CAP
                self._carry = None
            self._line(line[:LINE_CAP], truncated)
        if tail is not None:
            self._hold(tail)

    def _hold(self, tail: bytes) -> None:
        if self._carry is None:
            self._carry, self._carry_truncated = b"", False
        self._carry += tail[:LINE_CAP]
        if len(self._carry) > LINE_CAP:
            self._carry = self._carry[:LINE_CAP]
            self._carry_truncated = True

    def close(self) -> None:
        if self._carry is not None:
            line, self._carry = self._carry, None
            self._line(line, self._carry_truncated)
        if self._in_headers:
            self._end_headers()  # the parser acts on a header block cut off by the end too

    # -- line level -------------------------------------------------------

    def _line(self, line: bytes, truncated: bool) -> None:
        if self._skip is not None:
            # like the parser: boundary lines straight after a delimiter are swallowed
            if self._delimiter(line, self._skip) is not None:
                return
            self._skip = None
        if self._in_headers:
            self._header_line(line, truncated)
        elif self._stack:
            self._body_line(line)

    def _header_line(self, line: bytes, truncated: bool) -> None:
        if not line:
            self._end_headers()
        elif line[:1] in (b" ", b"\t"):
            if self._ctype_open and self._ctype is not None:
                self._collect(line, truncated)
        elif _FIELD_LINE.match(line):
            self._ctype_open = False
            if self._ctype is None and line[:13].lower() == b"content-type:":
                self._ctype, self._ctype_open = [], True
                self._collect(line, truncated)
        else:
            # like the parser: a line that is no field ends the block and is body
            self._end_headers()
            if self._stack:
                self._body_line(line)

    def _collect(self, line: bytes, truncated: bool) -> None:
        assert self._ctype is not None
        self._ctype_size += len(line)
        if truncated or self._ctype_size > LINE_CAP:
            raise ManifestLimitExceeded(f"Content-Type header longer than {LINE_CAP} bytes")
        self._ctype.append(line)

    def _end_headers(self) -> None:
        default = "message/rfc822" if self._digest_child else "text/plain"
        ctype, boundary = _content_type(self._ctype, default) if self._ctype else (default, None)
        self._ctype, self._ctype_open, self._ctype_size = None, False, 0
        self._digest_child = False
        self._in_headers = False
        if ctype == "message/delivery-status":
            self._push(_Frame("dsn"))
            self._count_part()  # the first block, even an empty one
        elif ctype.startswith("message/"):
            self._push(_Frame("message"))
            self._count_part()  # the enclosed message
            self._in_headers = True
        elif ctype.startswith("multipart/") and boundary is not None:
            digest = ctype == "multipart/digest"
            self._push(_Frame("multipart", _boundary_bytes(boundary), digest))

    def _body_line(self, line: bytes) -> None:
        if line.startswith(b"--"):
            for index in range(len(self._stack) - 1, -1, -1):
                frame = self._stack[index]
                kind = self._delimiter(line, frame.boundary)
                if kind is None:
                    continue
                del self._stack[index + 1 :]
                if kind == "close":
                    self._stack.pop()
                else:
                    self._count_part()
                    self._in_headers = True
                    self._digest_child = frame.digest
                    self._skip = frame.boundary
                return
        if self._stack[-1].kind == "dsn":
            if not line:
                self._count_part()  # each block of a delivery status is a part
            elif line[:13].lower() == b"content-type:":
                self._dsn_typed_block()

    def _dsn_typed_block(self) -> None:
        """A status block with a Content-Type of its own: the parser honours it,
        but the block ends at its blank line, so at most two more levels
        (e.g. message/rfc822 and an empty inner message) can come of it."""
        self._count_part()
        self._count_part()
        self.depth = max(self.depth, len(self._stack) + 2)
        if len(self._stack) + 2 > self.max_depth:
            raise ManifestLimitExceeded(f"MIME nesting too deep: more than {self.max_depth} levels")

    @staticmethod
    def _delimiter(line: bytes, boundary: bytes | None) -> str | None:
        if boundary is None or not line.startswith(boundary, 2):
            return None
        if len(boundary) >= _BOUNDARY_CAP:
            return "delimiter"  # too long to check the rest: count it
        rest = line[2 + len(boundary) :]
        close = rest.startswith(b"--")
        if close:
            rest = rest[2:]
        if rest.strip(b" \t"):
            return None
        return "close" if close else "delimiter"

    # -- limits -----------------------------------------------------------

    def _push(self, frame: _Frame) -> None:
        self._stack.append(frame)
        self.depth = max(self.depth, len(self._stack))
        if len(self._stack) > self.max_depth:
            raise ManifestLimitExceeded(f"MIME nesting too deep: more than {self.max_depth} levels")

    def _count_part(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise ManifestLimitExceeded(f"too many MIME parts: more than {self.max_parts}")
