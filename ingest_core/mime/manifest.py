"""MIME manifest: which parts of a message are attachments, and their bytes.

``parse_message`` feeds the raw bytes in chunks to the stdlib's
``BytesFeedParser`` (``policy.default``), whose parts charge a ``PartBudget``
as it builds them, so the parse stops as soon as the part, nesting or line
limit is exceeded (``scan``). ``iter_attachments`` then walks the tree with
IMAP-style part numbers and decodes each attachment into a file of its own,
one at a time, so a caller can store it and move on (``walk``).
``build_manifest`` does both and keeps only the metadata.

An attachment is a leaf part with ``Content-Disposition: attachment``, or with
a filename, or whose type is anything but a ``text/plain``/``text/html`` body;
an attached message is one too, and its parts are attachments below it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.mime.errors import ManifestLimitExceeded
from ingest_core.mime.scan import PartBudget, budget_of, parse_stream
from ingest_core.mime.walk import Walker

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest_core.mime.entries import ExtractedFile, ManifestEntry, MimeLimits

PARSE_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message: EmailMessage
    parts_seen: int
    bytes_fed: int
    defects: tuple[str, ...]
    depth: int = 0


@dataclass(frozen=True, slots=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    defects: tuple[str, ...] = field(default=())


def _budget(limits: MimeLimits) -> PartBudget:
    return PartBudget(
        max_parts=limits.max_parts, max_depth=limits.max_depth, max_lines=limits.max_lines
    )


def parse_message(
    source: BinaryIO, limits: MimeLimits, *, chunk_size: int = PARSE_CHUNK
) -> ParsedMessage:
    """Parse a raw message with the limits enforced while it is fed.

    Raises ManifestLimitExceeded (also for the parser's own RecursionError) or
    MalformedMessage.
    """
    budget = _budget(limits)
    message, fed = parse_stream(source, budget, chunk_size=chunk_size)
    return ParsedMessage(message, budget.parts, fed, _defects(message), budget.depth)


def _defects(message: Message) -> tuple[str, ...]:
    names: set[str] = set()
    stack: list[Message] = [message]
    while stack:
        part = stack.pop()
        names.update(type(defect).__name__ for defect in part.defects)
        if part.is_multipart():  # not get_payload() on a leaf: it copies the body
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
    return tuple(sorted(names))


def iter_attachments(
    message: Message, limits: MimeLimits, workdir: Path
) -> Iterator[ExtractedFile]:
    """Decode each attachment into a file under ``workdir``, one at a time.

    A yielded file is removed when the iterator resumes: store it first.
    Raises ManifestLimitExceeded for too many parts or decoded bytes; inner
    messages parsed on the way charge the budget ``message`` was parsed with.
    """
    budget = budget_of(message) or _budget(limits)
    linesep = getattr(message, "linesep", "\n")
    walker = Walker(budget, limits, workdir, linesep if isinstance(linesep, str) else "\n")
    try:
        yield from walker.message(message, "")
    except RecursionError as exc:
        raise ManifestLimitExceeded("MIME nesting too deep") from exc


def build_manifest(
    source: BinaryIO, limits: MimeLimits, *, workdir: Path | None = None
) -> Manifest:
    """Parse and list the attachments (metadata only; decoded files are discarded)."""
    parsed = parse_message(source, limits)
    with tempfile.TemporaryDirectory(prefix="manifest-", dir=workdir) as tmp:
        entries = tuple(f.entry for f in iter_attachments(parsed.message, limits, Path(tmp)))
    return Manifest(entries, parsed.defects)
