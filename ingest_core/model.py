"""Frozen value objects of the domain."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid
    from datetime import datetime

# The largest message we take unless INGEST_MAX_MESSAGE_BYTES says otherwise:
# 35 MiB (36,700,160 bytes), 1 MiB above Postfix's message_size_limit in deploy/.
MAX_MESSAGE_BYTES = 35 * 1024 * 1024


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class MessageStatus(enum.StrEnum):
    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"
    QUARANTINED = "QUARANTINED"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: uuid.UUID
    slug: str
    name: str
    status: TenantStatus = TenantStatus.ACTIVE

    @property
    def active(self) -> bool:
        return self.status is TenantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What the accept path records for one tenant."""

    org_id: uuid.UUID
    source_message_id: str
    message_id_header: str | None
    sha256: str
    content_sha256: str
    size_bytes: int
    raw_object_key: str
    envelope_from: str
    envelope_recipient: str
    subject: str | None
    from_header: str | None
    received_at: datetime
    client_address: str | None = None
    client_helo: str | None = None
    postfix_queue_id: str | None = None
    source: str = "EMAIL"


class RecordKind(enum.Enum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    CONFLICT_STORED = "conflict-stored"


@dataclass(frozen=True, slots=True)
class Recorded:
    kind: RecordKind
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """Sender authentication of one message, as stored on its row.

    ``dkim`` holds (domain, selector, result) per signature; ``aligned`` says an
    aligned SPF or DKIM pass exists for ``from_domain`` (even without a DMARC
    record); ``temporary`` says a DNS failure took part, so the verdict is
    computed again on the next attempt.
    """

    spf: str
    dkim: tuple[tuple[str, str, str], ...]
    dmarc: str
    dmarc_policy: str | None
    arc: str
    from_domain: str | None
    from_address: str | None
    aligned: bool
    temporary: bool
    summary: str


class AutomatedKind(enum.StrEnum):
    """What kind of automated mail a message is (docs/automated-mail.md)."""

    AUTO_REPLY = "auto-reply"
    BOUNCE = "bounce"
    FEEDBACK_REPORT = "feedback-report"
    LIST = "list"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class BounceDetails:
    """What a bounce says about the failed delivery; each field bounded and cleaned."""

    original_recipient: str | None = None
    action: str | None = None  # failed | delayed | delivered | relayed | expanded
    status: str | None = None  # an RFC 3463 code, e.g. 5.1.1
    diagnostic: str | None = None


@dataclass(frozen=True, slots=True)
class AutomatedVerdict:
    """The classification of one message: ``kind`` None is ordinary mail;
    ``reason`` names the field or structure that decided."""

    kind: AutomatedKind | None
    reason: str | None = None
    bounce: BounceDetails | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A row of inbound_message as the worker and the operator see it."""

    id: uuid.UUID
    org_id: uuid.UUID
    source_message_id: str
    sha256: str
    content_sha256: str
    size_bytes: int
    raw_object_key: str
    envelope_from: str
    envelope_recipient: str
    subject: str | None
    from_header: str | None
    received_at: datetime
    status: MessageStatus
    attempts: int
    claimed_at: datetime | None = None
    last_error: str | None = None
    parser_version: str | None = None
    processed_at: datetime | None = None
    client_address: str | None = None
    client_helo: str | None = None
    postfix_queue_id: str | None = None
    auth: AuthVerdict | None = None
    quarantine_reason: str | None = None
    released_at: datetime | None = None  # released once: never held again, by any check
    automated: AutomatedVerdict | None = None  # None: not classified yet


@dataclass(frozen=True, slots=True)
class Attachment:
    """One extracted attachment (decoded bytes stored content-addressed).

    ``content_type`` is what the sender declared; ``detected_type`` is what the
    decoded bytes' magic numbers say (None when nothing was recognised).
    """

    part_path: str
    content_type: str
    disposition: str | None
    filename: str | None
    size_bytes: int
    sha256: str
    object_key: str
    notes: tuple[str, ...] = field(default=())
    detected_type: str | None = None
