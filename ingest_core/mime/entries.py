"""What the manifest is made of: its limits, its entries, the decoded files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.model import Attachment

if TYPE_CHECKING:
    import uuid
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_parts: int = 1000
    max_depth: int = 10
    max_decoded_bytes: int = 268_435_456
    max_lines: int = 1_000_000


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One attachment's metadata; ``filename`` is for display only.

    ``content_type`` is what the sender declared (made usable);
    ``detected_type`` what the decoded bytes' signature says, when known."""

    part_path: str
    content_type: str
    disposition: str | None
    filename: str | None
    size: int
    sha256: str
    notes: tuple[str, ...] = ()
    detected_type: str | None = None

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
            detected_type=self.detected_type,
        )


@dataclass(frozen=True, slots=True)
class ExtractedFile:
    """An attachment decoded into a temporary file, valid until the iterator moves on."""

    entry: ManifestEntry
    path: Path

    def open(self) -> BinaryIO:
        return self.path.open("rb")


def attachment_key(org_id: uuid.UUID, sha256: str) -> str:
    """Content-addressed key: never any sender-controlled text in it."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("attachment key needs a hex sha256")
    return f"attachments/{org_id}/{sha256}"
