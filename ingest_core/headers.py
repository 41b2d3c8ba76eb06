"""Reading the few header fields the accept path records, from a bounded prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import BinaryIO

HEAD_LIMIT = 256 * 1024
_MSGID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,500}@[\x21-\x3b\x3d\x3f-\x7e]{1,500}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 998


@dataclass(frozen=True, slots=True)
class HeaderSummary:
    message_id: str | None
    subject: str | None
    from_header: str | None


def read_head(source: BinaryIO, limit: int = HEAD_LIMIT) -> bytes:
    """The header block (up to the first empty line), at most ``limit`` bytes."""
    head = source.read(limit)
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    return head if end < 0 else head[: end + 2]


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = _CONTROL.sub("", " ".join(value.split()))[:MAX_TEXT]
    return text or None


def _field(message: object, name: str) -> str | None:
    try:
        value = message[name]  # type: ignore[index]
    except Exception:
        return None
    return None if value is None else str(value)


def summarise(head: bytes) -> HeaderSummary:
    """Message-ID (validated, brackets stripped), decoded Subject and From."""
    message = BytesParser(policy=policy.default).parsebytes(head, headersonly=True)
    return HeaderSummary(
        message_id=normalise_message_id(_raw_field(message, "Message-ID")),
        subject=_clean(_field(message, "Subject")),
        from_header=_clean(_field(message, "From")),
    )


def _raw_field(message: object, name: str) -> str | None:
    try:
        values = message.get_all(name)  # type: ignore[attr-defined]
    except Exception:
        return None
    if not values or len(values) != 1:
        return None  # absent, or several Message-ID fields: not trustworthy
    return str(values[0])


def normalise_message_id(value: str | None) -> str | None:
    """``<id@host>`` → ``id@host``; None when absent or not a msg-id."""
    if value is None:
        return None
    text = "".join(value.split())
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text if _MSGID.fullmatch(text) else None
