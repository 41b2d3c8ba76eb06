"""MIME manifest: which parts of a message are attachments, and their bytes.

``parse_message`` feeds the raw bytes in chunks to the stdlib's
``BytesFeedParser`` (``policy.default``) with a ``StructureScanner`` in front
of it that stops the parse as soon as the part or nesting limit is exceeded.
``iter_attachments`` then walks the tree with IMAP-style part numbers and
decodes each attachment into a file of its own, one at a time, so a caller can
store it and move on. ``build_manifest`` does both and keeps only the metadata.

An attachment is a leaf part with ``Content-Disposition: attachment``, or with
a filename, or whose type is anything but a ``text/plain``/``text/html`` body.
``message/*`` parts are entered (their parts numbered below the part's own
number); ``winmail.dat`` (TNEF) is unpacked into the files it carries.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import tempfile
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesFeedParser
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.mime.decode import DecodedBudget, decode_body
from ingest_core.mime.errors import MalformedMessage, ManifestError, ManifestLimitExceeded
from ingest_core.mime.filenames import display_filename, sanitize_filename
from ingest_core.mime.scan import StructureScanner
from ingest_core.mime.tnef import is_tnef, unpack_tnef
from ingest_core.model import Attachment

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator

    from ingest_core.settings import Settings


PARSE_CHUNK = 64 * 1024
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_DISPOSITION = re.compile(r"[a-z][a-z0-9-]{0,31}")


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_parts: int = 1000
    max_depth: int = 10
    max_decoded_bytes: int = 268_435_456
    max_lines: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> MimeLimits:
        return cls(
            max_parts=settings.extract_max_parts,
            max_depth=settings.extract_max_depth,
            max_decoded_bytes=settings.extract_max_decoded_bytes,
            max_lines=settings.extract_max_lines,
        )


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One attachment's metadata; ``filename`` is for display only."""

    part_path: str
    content_type: str
    disposition: str | None
    filename: str | None
    size: int
    sha256: str
    notes: tuple[str, ...] = ()

    def to_attachment(self, org_id: uuid.UUID) -> Attachment:
        return Attachment(
            part_path=self.part_path,
            content_type=self.content_type,
            disposition=self.disposition,
            filename=self.filename,
            size_bytes=self.size,
            sha256=self.sha256,
            object_key=attachment_key(org_id, self.sha256),
            notes=self.notes,
        )


@dataclass(frozen=True, slots=True)
class ExtractedFile:
    """An attachment decoded into a temporary file, valid until the iterator moves on."""

    entry: ManifestEntry
    path: Path

    def open(self) -> BinaryIO:
        return self.path.open("rb")


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message: EmailMessage
    parts_seen: int
    bytes_fed: int
    defects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    defects: tuple[str, ...] = field(default=())


def attachment_key(org_id: uuid.UUID, sha256: str) -> str:
    """Content-addressed key: never any sender-controlled text in it."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("attachment key needs a hex sha256")
    return f"attachments/{org_id}/{sha256}"


# -- parsing ----------------------------------------------------------------


def parse_message(
    source: BinaryIO, limits: MimeLimits, *, chunk_size: int = PARSE_CHUNK
) -> ParsedMessage:
    """Parse a raw message with the limits enforced while it is fed.

    Raises ManifestLimitExceeded (also for the parser's own RecursionError) or
    MalformedMessage.
    """
    scanner = StructureScanner(
        max_parts=limits.max_parts, max_depth=limits.max_depth, max_lines=limits.max_lines
    )
    parser = BytesFeedParser(policy=policy.default)
    try:
        while data := source.read(chunk_size):
            scanner.feed(data)
            parser.feed(data)
        scanner.close()
        message = parser.close()
    except RecursionError as exc:
        raise ManifestLimitExceeded("MIME nesting too deep for the parser") from exc
    except ManifestError:
        raise
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure
        raise MalformedMessage(f"MIME parser failed ({type(exc).__name__})") from exc
    if not isinstance(message, EmailMessage):  # policy.default always builds these
        raise MalformedMessage("MIME parser returned no message")
    return ParsedMessage(message, scanner.parts, scanner.fed, _defects(message))


def _defects(message: Message) -> tuple[str, ...]:
    names: set[str] = set()
    stack: list[Message] = [message]
    while stack:
        part = stack.pop()
        names.update(type(defect).__name__ for defect in part.defects)
        if part.is_multipart():  # not get_payload() on a leaf: it copies the body
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
    return tuple(sorted(names))


# -- walking ----------------------------------------------------------------


def _join(prefix: str, number: int) -> str:
    return f"{prefix}.{number}" if prefix else str(number)


def _leaves(message: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    """(part_path, leaf) in IMAP numbering: a non-multipart message's body is
    ``prefix.1``; the children of a multipart are ``prefix.1`` … ``prefix.n``."""
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for number, child in enumerate(message.get_payload(), 1):
            yield from _part(child, _join(prefix, number))
    else:
        yield from _part(message, _join(prefix, 1))


def _part(part: Message, path: str) -> Iterator[tuple[str, Message]]:
    if not part.is_multipart():  # is_multipart(): a list payload, whatever the type
        yield path, part
        return
    children = [p for p in part.get_payload() if isinstance(p, Message)]
    if part.get_content_type() == "message/delivery-status":
        return  # status fields of a bounce, not content
    if part.get_content_maintype() == "message":
        for inner in children[:1]:
            yield from _leaves(inner, path)
    else:
        for number, child in enumerate(children, 1):
            yield from _part(child, f"{path}.{number}")


def _describe(part: Message) -> tuple[str, str | None, str | None, list[str]]:
    """(content type, disposition, display filename, notes); never raises."""
    notes: list[str] = []
    try:
        content_type = part.get_content_type()
    except Exception:  # the header registry has raised on hostile input before
        content_type = ""
    if not _CONTENT_TYPE.fullmatch(content_type):
        notes.append("unusable Content-Type: recorded as application/octet-stream")
        content_type = "application/octet-stream"
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition is not None and not _DISPOSITION.fullmatch(disposition):
        disposition = None
    try:
        filename = display_filename(part)
    except Exception:
        filename = None
        notes.append("unreadable filename")
    return content_type, disposition, filename, notes


def _is_attachment(content_type: str, disposition: str | None, filename: str | None) -> bool:
    return disposition == "attachment" or filename is not None or content_type not in _BODY_TYPES


# -- attachments --------------------------------------------------------------


def iter_attachments(
    message: Message, limits: MimeLimits, workdir: Path
) -> Iterator[ExtractedFile]:
    """Decode each attachment into a file under ``workdir``, one at a time.

    A yielded file is removed when the iterator resumes: store it first.
    Raises ManifestLimitExceeded for too many parts or decoded bytes.
    """
    budget = DecodedBudget(limits.max_decoded_bytes)
    try:
        for count, (path, part) in enumerate(_leaves(message), 1):
            if count > limits.max_parts:
                raise ManifestLimitExceeded(f"too many MIME parts: more than {limits.max_parts}")
            content_type, disposition, filename, notes = _describe(part)
            if not _is_attachment(content_type, disposition, filename):
                continue
            entry = ManifestEntry(path, content_type, disposition, filename, 0, "", tuple(notes))
            yield from _extract(part, entry, budget, workdir)
    except RecursionError as exc:
        raise ManifestLimitExceeded("MIME nesting too deep") from exc


def _extract(
    part: Message, entry: ManifestEntry, budget: DecodedBudget, workdir: Path
) -> Iterator[ExtractedFile]:
    target = workdir / "part.bin"
    try:
        with target.open("wb") as out:
            body = decode_body(part, out, budget)
        entry = replace(entry, size=body.size, sha256=body.sha256, notes=entry.notes + body.notes)
        if is_tnef(entry.content_type, entry.filename):
            yield from _unpack_tnef(entry, target, budget, workdir)
        else:
            yield ExtractedFile(entry, target)
    finally:
        target.unlink(missing_ok=True)


def _unpack_tnef(
    entry: ManifestEntry, source: Path, budget: DecodedBudget, workdir: Path
) -> Iterator[ExtractedFile]:
    outdir = Path(tempfile.mkdtemp(prefix="tnef-", dir=workdir))
    try:
        files = unpack_tnef(source, outdir)
        if not files:
            note = "TNEF not unpacked: kept as is" if files is None else "TNEF without files"
            yield ExtractedFile(replace(entry, notes=(*entry.notes, note)), source)
            return
        for number, unpacked in enumerate(files, 1):
            size, digest = _hash_file(unpacked.path, budget)
            filename = sanitize_filename(unpacked.name)
            guessed = mimetypes.guess_type(filename or "", strict=False)[0]
            content_type = guessed if guessed and _CONTENT_TYPE.fullmatch(guessed) else None
            unpacked_entry = ManifestEntry(
                part_path=f"{entry.part_path}.{number}",
                content_type=content_type or "application/octet-stream",
                disposition="attachment",
                filename=filename,
                size=size,
                sha256=digest,
                notes=(*entry.notes, f"unpacked from TNEF part {entry.part_path}"),
            )
            yield ExtractedFile(unpacked_entry, unpacked.path)
            unpacked.path.unlink(missing_ok=True)
    finally:
        for leftover in outdir.iterdir():
            leftover.unlink(missing_ok=True)
        outdir.rmdir()


def _hash_file(path: Path, budget: DecodedBudget) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            budget.take(len(chunk))
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def build_manifest(
    source: BinaryIO, limits: MimeLimits, *, workdir: Path | None = None
) -> Manifest:
    """Parse and list the attachments (metadata only; decoded files are discarded)."""
    parsed = parse_message(source, limits)
    with tempfile.TemporaryDirectory(prefix="manifest-", dir=workdir) as tmp:
        entries = tuple(f.entry for f in iter_attachments(parsed.message, limits, Path(tmp)))
    return Manifest(entries, parsed.defects)
