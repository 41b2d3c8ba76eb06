"""Reading the few header fields the accept path records, from a bounded prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from typing import BinaryIO

from ingest_core.text import displayable

HEAD_LIMIT = 256 * 1024
_MSGID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,500}@[\x21-\x3b\x3d\x3f-\x7e]{1,500}")
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
    return displayable(value, MAX_TEXT) or None


def clean_field(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Sender-supplied text made safe to store and show: whitespace runs collapsed,
    control and bidi-override characters removed, at most ``limit`` characters."""
    text = _clean(value)
    return None if text is None else text[:limit]


_WANTED = frozenset({"message-id", "subject", "from"})
# The header class is built once: the registry's factory makes a new class per call.
_UNSTRUCTURED = HeaderRegistry()["x-unstructured"]


def header_fields(head: bytes, wanted: frozenset[str] = _WANTED) -> dict[str, list[str]]:
    """The unfolded values of the ``wanted`` fields (lower-case names), by name.

    A deliberately small reader: the full ``email`` parser with ``policy.default``
    cost about ten times as much per message on the accept path, and we need
    three fields. Bytes that are not UTF-8 are replaced, never trusted.
    """
    fields: dict[str, list[str]] = {}
    name: str | None = None
    value: list[str] = []
    for raw_line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if not raw_line:
            break  # the end of the header block
        if raw_line[:1] in (b" ", b"\t"):  # folded: part of the field above, never a field
            if name is not None:
                value.append(raw_line.decode("utf-8", "replace"))
            continue
        if name is not None:
            fields.setdefault(name, []).append("".join(value))
            name = None
        colon = raw_line.find(b":")
        if colon <= 0:
            continue
        field = raw_line[:colon].strip().decode("ascii", "replace").lower()
        if field in wanted:
            name, value = field, [raw_line[colon + 1 :].decode("utf-8", "replace")]
    if name is not None:
        fields.setdefault(name, []).append("".join(value))
    return fields


def decoded(values: list[str] | None) -> str | None:
    """The single value of a field, RFC 2047 words decoded; None if absent."""
    if not values:
        return None
    try:
        text = str(_UNSTRUCTURED("x-unstructured", values[0]))
    except Exception:
        text = values[0]
    return _clean(text)


def summarise(head: bytes) -> HeaderSummary:
    """Message-ID (validated, brackets stripped), decoded Subject and From."""
    fields = header_fields(head)
    message_ids = fields.get("message-id", [])
    # absent, or several Message-ID fields: not trustworthy
    message_id = normalise_message_id(message_ids[0]) if len(message_ids) == 1 else None
    return HeaderSummary(
        message_id=message_id,
        subject=decoded(fields.get("subject")),
        from_header=decoded(fields.get("from")),
    )


def normalise_message_id(value: str | None) -> str | None:
    """``<id@host>`` → ``id@host``; None when absent or not a msg-id."""
    if value is None:
        return None
    text = "".join(value.split())
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text if _MSGID.fullmatch(text) else None
