"""What the tenant API reads: messages and attachments of one tenant, and the
opaque keyset cursor of the message list (newest first)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_PAGE = 100
DEFAULT_PAGE = 50


class BadCursor(ValueError):
    """A cursor this service did not issue (or one mangled on the way)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last row's (received_at, id)."""

    received_at: datetime
    message_id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.received_at.isoformat()}|{self.message_id}".encode("ascii")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
            moment, _, message_id = text.partition("|")
            at = datetime.fromisoformat(moment)
            if at.tzinfo is None:
                raise ValueError("naive time")
            return cls(at, uuid.UUID(message_id))
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise BadCursor("not a cursor of this API") from exc


@dataclass(frozen=True, slots=True)
class MessageQuery:
    org_id: uuid.UUID
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    automated: str | None = None  # a kind, "any" or "none"
    limit: int = DEFAULT_PAGE
    after: Position | None = None


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message as the API shows it; ``fields`` are its JSON-ready columns."""

    message_id: uuid.UUID
    received_at: datetime
    raw_object_key: str
    sha256: str
    size_bytes: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    attachment_id: uuid.UUID
    message_id: uuid.UUID
    object_key: str
    filename: str | None
    content_type: str
    sha256: str
    size_bytes: int
    fields: dict[str, Any]
