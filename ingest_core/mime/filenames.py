"""Attachment filenames: decoded for display, never used for storage.

Senders write filenames in three ways: plain parameters, RFC 2231 parameters
(``filename*0*=utf-8''...`` with continuations and a charset) and, against the
standards but common, RFC 2047 encoded words inside the parameter. The stdlib's
header registry handles the first two and quoted encoded words; an unquoted
encoded word is recovered with a small regular expression. Whatever comes out
is then made harmless: only the last component of a path, no control, bidi or
format characters, no leading dots, bounded length.
"""

from __future__ import annotations

import re
import unicodedata
from email.header import decode_header, make_header
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from email.message import Message

MAX_FILENAME_CHARS = 255
_MAX_EXTENSION_CHARS = 16

# Bidi embeddings/overrides/isolates, the implicit marks and the Arabic letter mark.
_BIDI = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
_UNQUOTED_WORD = re.compile(
    r"""\b(?:file)?name\s*=\s*(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)""", re.IGNORECASE
)


_RAW_PARAM = {
    name: re.compile(rf"""(?:^|;)\s*{name}\s*=\s*(?:"([^"]*)"|([^;\s]*))""", re.IGNORECASE)
    for name in ("filename", "name")
}
_SEPARATORS = re.compile(r"[\\/]")


def _dropped(char: str) -> bool:
    if char in _BIDI:
        return True
    # Cc: controls (incl. NUL, DEL); Cf: format (zero-width, bidi); Cs: lone
    # surrogates left by undecodable 8-bit bytes; Zl/Zp: line/paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words if any are left; on failure keep the text."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def sanitize_filename(value: str | None) -> str | None:
    """A display-only filename: harmless characters, no leading dots, capped.

    Returns None when nothing usable is left.
    """
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value)
    text = _last_component(text)
    text = "".join(" " if ch == "\t" else ch for ch in text if ch == "\t" or not _dropped(ch))
    text = " ".join(text.split())  # collapse runs of white space, trim the ends
    text = text.lstrip(". ")
    if not text:
        return None
    if len(text) > MAX_FILENAME_CHARS:
        text = _shorten(text)
    return text or None


def _last_component(text: str) -> str:
    """``C:\\orders\\PO.pdf`` → ``PO.pdf``: a sender's path is no part of the name."""
    components = [c for c in _SEPARATORS.split(text) if c.strip()]
    return components[-1] if components else ""


def _shorten(text: str) -> str:
    stem, dot, extension = text.rpartition(".")
    if dot and stem and 0 < len(extension) <= _MAX_EXTENSION_CHARS:
        keep = MAX_FILENAME_CHARS - len(extension) - 1
        return stem[:keep].rstrip() + "." + extension
    return text[:MAX_FILENAME_CHARS].rstrip()


def raw_filename(part: Message) -> str | None:
    """The sender's filename for a part, decoded but not yet sanitised.

    Content-Disposition ``filename`` first, then Content-Type ``name``.
    """
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        field = part.get(header)
        if field is None:
            continue
        params = getattr(field, "params", None)
        value = params.get(param) if params else None
        literal = _raw_param(raw_header(part, header), param)
        if literal is not None and (not value or _SEPARATORS.search(literal)):
            # a path the parser cannot read (``/`` unquoted) or reads with its
            # backslashes taken as escapes (``"C:\\orders\\PO.pdf"``): as written
            value = literal
        if value:
            return _decode_words(str(value))
        match = _UNQUOTED_WORD.search(raw_header(part, header))
        if match is not None:
            return _decode_words(match.group(1))
    return None


def _raw_param(header: str, name: str) -> str | None:
    """A plain (not RFC 2231) parameter's value exactly as written, or None."""
    match = _RAW_PARAM[name].search(header)
    if match is None:
        return None
    value = match.group(1) if match.group(1) is not None else match.group(2)
    return value or None


def raw_header(part: Message, name: str) -> str:
    """The header as the sender wrote it (the parsed object drops what it cannot parse)."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return ""


def display_filename(part: Message) -> str | None:
    """``raw_filename`` made safe for display; None when absent or unusable."""
    return sanitize_filename(raw_filename(part))
