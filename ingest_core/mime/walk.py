"""The walk over a parsed message: which parts are attachments, decoded one at a time.

Parts are numbered as IMAP numbers them: a non-multipart message's body is
``prefix.1``, the children of a multipart ``prefix.1`` … ``prefix.n``. An
attached message (``message/rfc822``) is an attachment itself (stored as the
``.eml`` it is) *and* is entered: ``2`` is the message, ``2.1``, ``2.2`` its
parts. Shapes real mailers send that the parser leaves unsplit or undecoded are
recovered here, always with a note on the entries concerned:

* an attached message with a transfer encoding is decoded and parsed again,
  charged to the same part, depth and decoded-bytes budget;
* a multipart whose boundary the parser could not read (``boundary=`` folded
  without its ``;``) is parsed again with the boundary read leniently;
* a multipart that cannot be split at all is kept as one blob, never dropped
  and never a 0-byte file;
* ``message/external-body`` and ``message/partial`` are recorded with what
  they carry, and not entered;
* ``winmail.dat`` (TNEF) is unpacked into the files it carries.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import re
import tempfile
from dataclasses import replace
from email.generator import BytesGenerator
from email.message import Message
from email.policy import EmailPolicy
from pathlib import Path
from typing import TYPE_CHECKING

import filetype  # type: ignore[import-untyped]

from ingest_core.mime.decode import (
    DecodedBudget,
    _slices,
    decode_body,
    raw_payload,
    transfer_encoding,
)
from ingest_core.mime.entries import ExtractedFile, ManifestEntry, MimeLimits
from ingest_core.mime.errors import ManifestLimitExceeded
from ingest_core.mime.filenames import display_filename, raw_header, sanitize_filename
from ingest_core.mime.scan import ENCODED_MESSAGE, PartBudget, parse_stream
from ingest_core.mime.tnef import is_tnef, unpack_tnef

if TYPE_CHECKING:
    from collections.abc import Iterator

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_DISPOSITION = re.compile(r"[a-z][a-z0-9-]{0,31}")
_LENIENT_BOUNDARY = re.compile(
    r"""\bboundary\s*=\s*(?:"([^"\\\r\n]{1,200})"|([^\s;"\\]{1,200}))""", re.IGNORECASE
)
_MULTIPART_SUBTYPE = re.compile(r"\s*multipart/([a-z0-9][a-z0-9.+-]{0,62})", re.IGNORECASE)
_REFERENCES = frozenset({"message/external-body", "message/partial"})
_ACCESS_TYPES = frozenset(
    {"ftp", "anon-ftp", "tftp", "afs", "local-file", "mail-server", "url", "content-id"}
)
_SNIFF_BYTES = 8192
_REPARSE_CHUNK = 64 * 1024
_OCTET_STREAM = "application/octet-stream"
_UNUSABLE_TYPE = "unusable Content-Type: recorded as application/octet-stream"

Notes = tuple[str, ...]


def _join(prefix: str, number: int) -> str:
    return f"{prefix}.{number}" if prefix else str(number)


def _level(part: Message) -> int:
    level = getattr(part, "level", 0)
    return level if isinstance(level, int) else 0


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # the header registry has raised on hostile input before
        return ""


class Walker:
    """Yields each attachment of one message as a decoded file, one at a time."""

    def __init__(
        self, budget: PartBudget, limits: MimeLimits, workdir: Path, linesep: str = "\n"
    ) -> None:
        self.budget = budget
        self.limits = limits
        self.decoded = DecodedBudget(limits.max_decoded_bytes)
        self.workdir = workdir
        self.linesep = linesep
        self.leaves = 0

    # -- structure ----------------------------------------------------------

    def message(self, message: Message, prefix: str, notes: Notes = ()) -> Iterator[ExtractedFile]:
        """A message's content, numbered below ``prefix``."""
        if message.get_content_maintype() == "multipart":
            yield from self._multipart(message, prefix, _join(prefix, 1), notes)
        else:
            yield from self.part(message, _join(prefix, 1), notes)

    def part(self, part: Message, path: str, notes: Notes = ()) -> Iterator[ExtractedFile]:
        content_type = _content_type(part)
        if part.get_content_maintype() == "multipart":
            yield from self._multipart(part, path, path, notes)
        elif content_type == "message/delivery-status":
            return  # status fields of a bounce, not content
        elif content_type in _REFERENCES:
            yield from self._reference(part, path, content_type, notes)
        elif content_type.startswith("message/") and (
            part.is_multipart() or transfer_encoding(part) in ENCODED_MESSAGE
        ):
            yield from self._attached_message(part, path, notes)
        else:
            yield from self._leaf(part, path, notes)

    def _multipart(
        self, part: Message, prefix: str, blob_path: str, notes: Notes
    ) -> Iterator[ExtractedFile]:
        if part.is_multipart():
            for number, child in enumerate(_children(part), 1):
                yield from self.part(child, _join(prefix, number), notes)
            return
        repaired = self._repair(part)
        if repaired is not None:
            note = "multipart boundary recovered from a malformed Content-Type"
            for number, child in enumerate(_children(repaired), 1):
                yield from self.part(child, _join(prefix, number), (*notes, note))
            return
        if raw_payload(part).strip():
            note = "multipart that cannot be split: body kept as one blob"
            # inside a multipart, the line end before the next delimiter is the
            # delimiter's; the parser leaves it on a multipart it could not split
            trim = prefix == blob_path
            yield from self._leaf(part, blob_path, (*notes, note), _OCTET_STREAM, trim=trim)

    def _repair(self, part: Message) -> Message | None:
        """The multipart parsed again with its boundary read leniently, or None."""
        header = raw_header(part, "content-type")
        match = _LENIENT_BOUNDARY.search(header)
        if match is None:
            return None
        boundary = match.group(1) or match.group(2)
        body = raw_payload(part)
        if not body.startswith(f"--{boundary}") and not re.search(
            rf"[\r\n]--{re.escape(boundary)}", body
        ):
            return None
        subtype = _MULTIPART_SUBTYPE.match(header)
        head = f"Content-Type: multipart/{subtype.group(1) if subtype else 'mixed'};"
        head += f' boundary="{boundary}"{self.linesep}{self.linesep}'
        with self._tempfile() as path:
            with path.open("wb") as out:
                out.write(head.encode("ascii", "surrogateescape"))
                for chunk in _slices(body):
                    out.write(chunk)
            self.budget.give_back_part()  # the new root stands for this part
            with path.open("rb") as source:
                repaired, _ = parse_stream(
                    source, self.budget, level=_level(part), chunk_size=_REPARSE_CHUNK
                )
        return repaired if repaired.is_multipart() else None

    def _attached_message(self, part: Message, path: str, notes: Notes) -> Iterator[ExtractedFile]:
        """The attached message as an ``.eml``, then its own parts."""
        content_type, disposition, filename, more = _describe(part)
        with self._tempfile() as target:
            if part.is_multipart():
                inner = _children(part)[0]
                self._flatten(inner, target)
                charge = True
            else:  # transfer-encoded: the parser kept its text (see scan)
                with target.open("wb") as out:
                    body = decode_body(part, out, self.decoded)
                more = [*more, f"{transfer_encoding(part)} message decoded", *body.notes]
                with target.open("rb") as source:
                    inner, _ = parse_stream(
                        source, self.budget, level=_level(part) + 1, chunk_size=_REPARSE_CHUNK
                    )
                charge = False
            filename = filename or _message_filename(inner)
            entry = ManifestEntry(path, content_type, disposition, filename, 0, "", (*notes, *more))
            yield self._finished(entry, target, charge=charge)
        yield from self.message(inner, path, notes)

    def _reference(
        self, part: Message, path: str, content_type: str, notes: Notes
    ) -> Iterator[ExtractedFile]:
        """``message/external-body`` / ``message/partial``: recorded, not entered."""
        if content_type == "message/external-body":
            access = str(part.get_param("access-type") or "").lower()
            access = access if access in _ACCESS_TYPES else "unknown"
            note = f"external body (access-type {access}): the content is not in the message"
        else:
            number, total = (_digits(part.get_param(name)) for name in ("number", "total"))
            note = f"message/partial fragment {number} of {total}: fragments are not reassembled"
        _, disposition, filename, more = _describe(part)
        with self._tempfile() as target:
            inner = _children(part)
            if inner:
                self._flatten(inner[0], target)
            else:
                target.write_bytes(b"")
            entry = ManifestEntry(
                path, content_type, disposition, filename, 0, "", (*notes, *more, note)
            )
            yield self._finished(entry, target, charge=True)

    # -- leaves ---------------------------------------------------------------

    def _leaf(
        self,
        part: Message,
        path: str,
        notes: Notes,
        forced_type: str | None = None,
        *,
        trim: bool = False,
    ) -> Iterator[ExtractedFile]:
        self.leaves += 1
        if self.leaves > self.limits.max_parts:
            raise ManifestLimitExceeded(f"too many MIME parts: more than {self.limits.max_parts}")
        content_type, disposition, filename, more = _describe(part)
        if forced_type is None and not _is_attachment(content_type, disposition, filename):
            return
        entry = ManifestEntry(
            path, forced_type or content_type, disposition, filename, 0, "", (*notes, *more)
        )
        with self._tempfile() as target:
            with target.open("wb") as out:
                body = decode_body(part, out, self.decoded, trim_line_end=trim)
            if entry.filename is None and body.filename is not None:
                entry = replace(entry, filename=sanitize_filename(body.filename))
            entry = replace(entry, notes=entry.notes + body.notes)
            finished = self._finished(entry, target, charge=False)
            if is_tnef(entry.content_type, entry.filename):
                yield from self._unpack_tnef(finished)
            else:
                yield finished

    def _unpack_tnef(self, packed: ExtractedFile) -> Iterator[ExtractedFile]:
        entry = packed.entry
        outdir = Path(tempfile.mkdtemp(prefix="tnef-", dir=self.workdir))
        try:
            files = unpack_tnef(packed.path, outdir)
            if not files:
                note = "TNEF not unpacked: kept as is" if files is None else "TNEF without files"
                yield replace(packed, entry=replace(entry, notes=(*entry.notes, note)))
                return
            for number, unpacked in enumerate(files, 1):
                filename = sanitize_filename(unpacked.name)
                guessed = mimetypes.guess_type(filename or "", strict=False)[0]
                content_type = guessed if guessed and _CONTENT_TYPE.fullmatch(guessed) else None
                unpacked_entry = ManifestEntry(
                    part_path=f"{entry.part_path}.{number}",
                    content_type=content_type or _OCTET_STREAM,
                    disposition="attachment",
                    filename=filename,
                    size=0,
                    sha256="",
                    notes=(*entry.notes, f"unpacked from TNEF part {entry.part_path}"),
                )
                yield self._finished(unpacked_entry, unpacked.path, charge=True)
                unpacked.path.unlink(missing_ok=True)
        finally:
            for leftover in outdir.iterdir():
                leftover.unlink(missing_ok=True)
            outdir.rmdir()

    # -- files ----------------------------------------------------------------

    @contextlib.contextmanager
    def _tempfile(self) -> Iterator[Path]:
        handle, name = tempfile.mkstemp(prefix="part-", dir=self.workdir)
        path = Path(name)
        try:
            with open(handle, "wb"):
                pass
            yield path
        finally:
            path.unlink(missing_ok=True)

    def _flatten(self, message: Message, target: Path) -> None:
        """An enclosed message written out as the parser read it: fields as
        the sender folded them, part bodies unchanged, our line ends."""
        with target.open("wb") as out:
            if not message.keys() and not message.is_multipart():
                # no header block was read (not a message at all): its text as it came
                for chunk in _slices(raw_payload(message)):
                    out.write(chunk)
                return
            policy = message.policy
            if isinstance(policy, EmailPolicy):  # always, for what the parser built
                policy = policy.clone(linesep=self.linesep, refold_source="none")
            BytesGenerator(out, mangle_from_=False, policy=policy).flatten(message)

    def _finished(self, entry: ManifestEntry, path: Path, *, charge: bool) -> ExtractedFile:
        """The entry with the file's size, sha256 and detected type. ``charge``:
        count the bytes against the decoded budget (a decoded body was counted
        while it was written)."""
        digest = hashlib.sha256()
        size = 0
        head = b""
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                if charge:
                    self.decoded.take(len(chunk))
                if not head:
                    head = chunk[:_SNIFF_BYTES]
                size += len(chunk)
                digest.update(chunk)
        return ExtractedFile(
            replace(entry, size=size, sha256=digest.hexdigest(), detected_type=_detect(head)),
            path,
        )


def _describe(part: Message) -> tuple[str, str | None, str | None, list[str]]:
    """(content type, disposition, display filename, notes); never raises."""
    notes: list[str] = []
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
    content_type = _content_type(part)
    header = raw_header(part, "content-type")
    declared = header.split(";", 1)[0].strip().lower()
    unusable = bool(header) and not _CONTENT_TYPE.fullmatch(declared)
    named = filename is not None or disposition == "attachment"
    # the parser reads an empty or invalid type as text/plain: a named file is no text body
    if not _CONTENT_TYPE.fullmatch(content_type) or (named and unusable):
        notes.append(_UNUSABLE_TYPE)
        content_type = _OCTET_STREAM
    return content_type, disposition, filename, notes


def _is_attachment(content_type: str, disposition: str | None, filename: str | None) -> bool:
    return disposition == "attachment" or filename is not None or content_type not in _BODY_TYPES


def _message_filename(message: Message) -> str:
    """A name for an attached message that has none: its Subject, as mail
    readers name a saved message."""
    try:
        subject = str(message.get("subject", "") or "")
    except Exception:
        subject = ""
    stem = sanitize_filename(subject[:200])
    return f"{stem}.eml" if stem else "message.eml"


def _digits(value: object) -> str:
    text = str(value or "")
    return text if text.isdigit() and len(text) <= 6 else "?"


def _detect(head: bytes) -> str | None:
    """The type the first bytes' signature says (PDF, ZIP/OOXML, images …)."""
    if not head:
        return None
    try:
        found = filetype.guess_mime(head)
    except Exception:  # a matcher that trips over hostile bytes must not stop extraction
        return None
    return found if isinstance(found, str) and _CONTENT_TYPE.fullmatch(found) else None
