"""The MIME part tree the console's message page shows, parsed again from the
stored raw bytes with extraction's limits (:func:`ingest_core.mime.parse_message`).
Part numbers follow extraction's (IMAP-style: ``2.1``), so a row of the tree
names the same part as the attachment that came from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.mime import ManifestError, parse_message
from ingest_core.mime.decode import raw_payload
from ingest_core.mime.filenames import display_filename
from ingest_core.text import displayable

if TYPE_CHECKING:
    from email.message import Message
    from typing import BinaryIO

    from ingest_core.mime import MimeLimits

MAX_TREE_BYTES = 16 * 1024 * 1024
"""Larger messages are not parsed for the page (their attachments still show)."""
MAX_ROWS = 500


@dataclass(frozen=True, slots=True)
class PartNode:
    depth: int
    path: str  # "" for the message itself
    content_type: str
    disposition: str | None
    filename: str | None
    encoded_size: int | None  # characters of a leaf's body as sent; None for containers


def part_tree(source: BinaryIO, limits: MimeLimits) -> list[PartNode] | None:
    """The parts in order, depth first; None when the message cannot be parsed
    within the limits."""
    try:
        message = parse_message(source, limits).message
    except ManifestError:
        return None
    rows: list[PartNode] = []
    _walk(message, "", 0, rows)
    return rows


def _join(prefix: str, number: int) -> str:
    return f"{prefix}.{number}" if prefix else str(number)


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if not isinstance(p, str)] if isinstance(payload, list) else []


def _walk(part: Message, path: str, depth: int, rows: list[PartNode]) -> None:
    if len(rows) >= MAX_ROWS:
        return
    try:
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
    except Exception:  # the header registry has raised on hostile input before
        content_type, disposition = "application/octet-stream", None
    leaf = not part.is_multipart()
    size = len(raw_payload(part)) if leaf else None
    name = display_filename(part)
    rows.append(
        PartNode(
            depth,
            path,
            displayable(content_type, 200),
            displayable(disposition, 100) if disposition else None,
            name,
            size,
        )
    )
    children = _children(part)
    if content_type.startswith("message/") and children:
        inner = children[0]
        if inner.is_multipart():
            for number, child in enumerate(_children(inner), 1):
                _walk(child, _join(path, number), depth + 1, rows)
        else:
            _walk(inner, _join(path, 1), depth + 1, rows)
        return
    prefix = path
    for number, child in enumerate(children, 1):
        _walk(child, _join(prefix, number), depth + 1, rows)
