"""Sender-controlled text made safe for where it goes. Three purposes, three
rules, one place:

* ``storable``: into Postgres ``text``, which holds neither NUL nor lone
  surrogates (``surrogateescape`` decoding of 8-bit headers makes those): both
  become U+FFFD, so a message never turns into a permanent database error.
* ``displayable``: onto one line of a log, a terminal, a table cell or a
  verdict summary: whitespace runs become one space; control characters (C0,
  DEL, C1), line and paragraph separators and bidi controls are removed (they
  could forge lines or reorder what a reader sees); bounded.
* ``smtp_safe``: into an SMTP reply line (and libmilter's C strings): printable
  ASCII only, and no ``%`` (a format character to libmilter-style consumers).
"""

from __future__ import annotations

import re

_UNSHOWABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def storable(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "\ufffd")


def displayable(text: str | None, limit: int) -> str:
    one_line = " ".join((text or "").split())  # line breaks and tabs become spaces
    return " ".join(_UNSHOWABLE.sub("", one_line).split())[:limit].rstrip()


def smtp_safe(text: str) -> str | None:
    """None when nothing printable is left."""
    cleaned = "".join(c if c.isascii() and c.isprintable() and c != "%" else " " for c in text)
    return cleaned.strip() or None
