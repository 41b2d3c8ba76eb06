"""Ports of the core (docs/contracts.md#ports). Synchronous on purpose: the huey worker calls
them directly; the trio server and the milter call them in worker threads."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator, Mapping, Sequence
    from contextvars import Context
    from datetime import datetime

    from ingest_core.api.reads import AttachmentRow, MessageQuery, MessageRow
    from ingest_core.api.tokens import TokenRecord
    from ingest_core.automated.policy import AutomatedPolicy
    from ingest_core.bodies import MessageBody
    from ingest_core.errors import StoreUnavailable
    from ingest_core.model import (
        Attachment,
        AuthVerdict,
        AutomatedVerdict,
        MessageStatus,
        NewMessage,
        Recorded,
        StoredMessage,
        Tenant,
    )
    from ingest_core.sender.policy import SenderRules
    from ingest_core.sender.verifier import SenderAuth
    from ingest_core.spool import Spool


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP/LMTP reply: basic code, enhanced status code (RFC 3463), fixed text."""

    code: int
    enhanced: str
    text: str

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


class Reason(enum.StrEnum):
    """Why a recipient got its reply: set by whoever decided it (the core, or
    the server for what the protocol refused), never inferred from reply text
    (an unknown tenant and an unknown mailbox get the same wire reply)."""

    OK = "ok"
    DUPLICATE = "duplicate"
    WRONG_DOMAIN = "wrong_domain"
    UNKNOWN_MAILBOX = "unknown_mailbox"
    UNKNOWN_TENANT = "unknown_tenant"
    TENANT_DISABLED = "tenant_disabled"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    ROLE_ADDRESS = "role_address"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INTERNAL_ERROR = "internal_error"
    OVERSIZE = "oversize"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    BAD_ADDRESS = "bad_address"
    ABORTED = "aborted"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    """The verdict on one RCPT: accepted for a tenant, or refused with a reply."""

    address: str
    reply: Reply
    tenant: Tenant | None = None
    reason: Reason = field(default=Reason.OTHER, kw_only=True)

    @property
    def accepted(self) -> bool:
        return self.tenant is not None and self.reply.positive


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """The final reply for one accepted recipient after the end of data."""

    address: str
    reply: Reply
    message_id: uuid.UUID | None = None
    reason: Reason = field(default=Reason.OTHER, kw_only=True)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything the dialogue established for one transaction."""

    mail_from: str
    recipients: tuple[RecipientDecision, ...]
    smtputf8: bool = False
    body: str | None = None
    lhlo: str | None = None
    peer: str | None = None
    xforward: Mapping[str, str] = field(default_factory=dict)


class InboundChannelPort(Protocol):
    """What a channel (LMTP, milter, later IMAP/webhook) calls."""

    def check_recipient(self, address: str, smtputf8: bool) -> RecipientDecision: ...

    def check_recipient_now(self, address: str, smtputf8: bool) -> RecipientDecision | None:
        """The decision if it needs no blocking I/O, else None (then call
        :meth:`check_recipient` in a worker thread)."""
        ...

    def accept(self, envelope: Envelope, spool: Spool) -> list[RecipientOutcome]: ...

    def accept_batch(self, deliveries: Sequence[Delivery]) -> AcceptedBatch:
        """:meth:`accept` for several messages at once (one call, one transaction);
        the extraction jobs are left for :meth:`schedule`, after the replies."""
        ...

    def schedule(self, jobs: Sequence[Job]) -> None:
        """Enqueue the extraction of accepted messages; never raises (a job that
        cannot be queued is left to the sweeper: its row is RECEIVED)."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for :meth:`InboundChannelPort.accept_batch`. ``context``: the
    channel's context for this message (log fields, the current span), in which
    its outcome is logged and traced."""

    envelope: Envelope
    spool: Spool
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """An extraction to enqueue, in the context of the accept that made it."""

    message_id: uuid.UUID
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    outcomes: list[list[RecipientOutcome]]  # per delivery, one per recipient in order
    jobs: list[Job]


class NotCached:
    """What :meth:`TenantDirectory.peek` says when it has no answer at hand."""


NOT_CACHED = NotCached()


class TenantDirectory(Protocol):
    def resolve(self, slug: str) -> Tenant | None:
        """The tenant with that slug, or None. Raises DirectoryUnavailable."""
        ...

    def peek(self, slug: str) -> Tenant | NotCached | None:
        """The answer :meth:`resolve` would give if it is at hand without blocking
        I/O (a live cache entry), else NOT_CACHED. Never raises."""
        ...


class BlobStore(Protocol):
    def put(self, key: str, spool: Spool) -> None:
        """Store the spool's bytes under key; durable on return. Raises StoreUnavailable."""
        ...

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        """Store a stream of known size under key; durable on return."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A streamed reader. Raises ObjectNotFound or StoreUnavailable."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error (idempotent). Raises
        StoreUnavailable."""
        ...

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """The keys under ``prefix`` (e.g. ``raw/``), each with when it was last
        written (epoch seconds); in no set order. Raises StoreUnavailable."""
        ...

    def ping(self) -> None:
        """A cheap call that raises StoreUnavailable unless the store is reachable."""
        ...

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        """:meth:`put` for several objects at once (syncs shared where the store
        can); per item, None once durable or the error that item met."""
        ...


class MessageRepository(Protocol):
    def record_received(self, message: NewMessage) -> Recorded:
        """Insert one inbound_message, committed on return (docs/contracts.md#durable-accept)."""
        ...

    def record_many(self, messages: Sequence[NewMessage]) -> list[Recorded]:
        """Several :meth:`record_received` in one transaction, committed on return;
        all or nothing. Raises RecordRejected when the data (not the database's
        availability) was refused."""
        ...

    def get(self, org_id: uuid.UUID, message_id: uuid.UUID) -> StoredMessage | None:
        """A tenant's own message; None for another tenant's id."""
        ...

    def claim(self, message_id: uuid.UUID, lease_s: float) -> StoredMessage | None:
        """Atomically move RECEIVED (or a PROCESSING row whose lease expired) to
        PROCESSING, count the attempt, set claimed_at. None if not claimable."""
        ...

    def finish(
        self,
        message_id: uuid.UUID,
        attachments: Sequence[Attachment],
        parser_version: str,
        body: MessageBody | None = None,
    ) -> None:
        """Make ``attachments`` the message's whole manifest (and ``body`` its
        stored text, replacing an earlier one; None leaves it) and mark it
        PROCESSED, all or nothing.

        Keyed on part_path: a part path recorded before is updated in place (its
        row id kept), parts missing from ``attachments`` are removed, so running
        it again (a lost acknowledgement, ``ingest replay`` with a newer parser)
        leaves exactly the latest manifest.
        """
        ...

    def fail(
        self, message_id: uuid.UUID, error: str, *, final: bool, retry_in_s: float = 0.0
    ) -> None:
        """Record last_error; FAILED when final, else back to RECEIVED for a retry
        due in ``retry_in_s`` (the sweep leaves the row alone until then)."""
        ...

    def record_auth(self, message_id: uuid.UUID, verdict: AuthVerdict) -> None:
        """Store the sender-authentication verdict on the row (replacing an earlier one)."""
        ...

    def record_automated(self, message_id: uuid.UUID, verdict: AutomatedVerdict) -> None:
        """Store the automated-mail classification on the row (replacing an earlier one)."""
        ...

    def quarantine(self, message_id: uuid.UUID, reason: str) -> None:
        """A claimed (PROCESSING) message becomes QUARANTINED with the reason."""
        ...

    def release(self, message_id: uuid.UUID) -> bool:
        """QUARANTINED → RECEIVED, marked released so that no check (sender policy,
        automated mail) holds it again, replays included; attempts reset. False if
        the message is not quarantined."""
        ...

    def list_attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[Attachment]: ...

    def stale(self, received_before: datetime, claimed_before: datetime) -> list[uuid.UUID]:
        """RECEIVED rows older than the first bound (and, when a retry is pending,
        whose retry was due before it) and PROCESSING rows whose claim is older than
        the second: what the sweeper re-enqueues."""
        ...

    def reset_for_replay(self, message_id: uuid.UUID) -> bool:
        """Move a message back to RECEIVED (attempts reset). False if unknown."""
        ...

    def ids_with_status(
        self, status: MessageStatus, org_id: uuid.UUID | None
    ) -> list[uuid.UUID]: ...


class SenderRulesSource(Protocol):
    def rules_for(self, org_id: uuid.UUID) -> SenderRules:
        """The tenant's sender policy and patterns. Raises StoreUnavailable."""
        ...


class AutomatedPolicySource(Protocol):
    def policy_for(self, org_id: uuid.UUID) -> AutomatedPolicy:
        """The tenant's extract-or-hold action per automated kind. Raises StoreUnavailable."""
        ...


class SenderVerifier(Protocol):
    def verify(
        self,
        raw: BinaryIO,
        *,
        envelope_from: str,
        client_address: str | None,
        client_helo: str | None,
    ) -> SenderAuth:
        """SPF, DKIM, DMARC and ARC verdicts for the raw message. Never raises for
        hostile input or DNS trouble: those become temperror/permerror verdicts."""
        ...


class JobQueue(Protocol):
    def enqueue_extraction(self, message_id: uuid.UUID) -> None:
        """Schedule extraction by id. Raises QueueUnavailable."""
        ...

    def enqueue_extractions(self, jobs: Sequence[tuple[uuid.UUID, str | None]]) -> None:
        """Schedule several extractions, each (message id, traceparent of the span
        that enqueues it), in one write where the queue can. Raises QueueUnavailable."""
        ...


class TokenRepository(Protocol):
    """API tokens (``ingest_core.api.tokens``); ``org_slug`` None means admin tokens."""

    def insert(
        self, token_id: str, org_slug: str | None, name: str, secret_sha256: str
    ) -> TokenRecord:
        """Raises TenantError for an unknown tenant or a live token of that name."""
        ...

    def list(self, org_slug: str | None) -> list[TokenRecord]: ...

    def revoke(self, org_slug: str | None, name: str) -> TokenRecord | None: ...

    def find(self, token_id: str) -> TokenRecord | None: ...

    def touch(self, token_id: str) -> None:
        """Set ``last_used_at`` to now (at most once a minute: the caller checks)."""
        ...


class TenantReads(Protocol):
    """The tenant API's reads; each filters by tenant (and attachments by message)."""

    def messages(self, query: MessageQuery) -> list[MessageRow]: ...

    def message(self, org_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow | None: ...

    def attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[AttachmentRow]: ...

    def attachment(
        self, org_id: uuid.UUID, message_id: uuid.UUID, attachment_id: uuid.UUID
    ) -> AttachmentRow | None: ...

    def body(self, org_id: uuid.UUID, message_id: uuid.UUID) -> MessageBody | None:
        """None until extraction has stored the message's bodies."""
        ...
