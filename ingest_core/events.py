"""Events to the order product (docs/events.md): what the outbox records.

The repository writes an event in the same transaction as each state change it
reports (``record_many``: received; ``finish``: processed; ``quarantine``;
``fail`` when final; ``release``; the lifecycle store's ``delete_messages``:
deleted), so the core calls no extra port for it. The
payload is thin: ids, a summary and API URLs; bodies and files are fetched
through the tenant API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid

# Bounds that keep a payload under 20 KB whatever the message carried: each
# text field is cut to MAX_TEXT_CHARS, at most MAX_LISTED_ATTACHMENTS are listed
# (attachment_count is the whole number, attachments_truncated says so).
MAX_TEXT_CHARS = 300
MAX_LISTED_ATTACHMENTS = 25


class EventType(enum.StrEnum):
    RECEIVED = "message.received"
    PROCESSED = "message.processed"
    QUARANTINED = "message.quarantined"
    FAILED = "message.failed"
    RELEASED = "message.released"
    DELETED = "message.deleted"  # retention or erasure removed it; ids and reason only


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event as the in-memory repository records it."""

    type: EventType
    message_id: uuid.UUID
