"""The durable-accept use case (DESIGN §4) and the channel port it serves."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opentelemetry import trace

from ingest_core import addressing
from ingest_core.errors import DirectoryUnavailable, QueueUnavailable, StoreUnavailable
from ingest_core.group_commit import GroupCommit
from ingest_core.headers import HeaderSummary, read_head, summarise
from ingest_core.model import NewMessage, Recorded, RecordKind, Tenant
from ingest_core.ports import (
    BlobStore,
    Envelope,
    JobQueue,
    MessageRepository,
    NotCached,
    RecipientDecision,
    RecipientOutcome,
    Reply,
    TenantDirectory,
)

if TYPE_CHECKING:
    from ingest_core.spool import Spool

log = logging.getLogger("ingest.accept")
tracer = trace.get_tracer("ingest_core.service")

STORAGE_UNAVAILABLE = Reply(451, "4.3.0", "Storage temporarily unavailable, try again later")
ROLE_ADDRESS = Reply(550, "5.1.1", "Role address not delivered here")


def raw_object_key(tenant: Tenant, sha256: str) -> str:
    return f"raw/{tenant.id}/{sha256}.eml"


@dataclass(frozen=True, slots=True)
class AcceptConfig:
    domains: tuple[str, ...]
    mailbox: str


class InboundService:
    """Implements :class:`ingest_core.ports.InboundChannelPort` over the other ports."""

    def __init__(
        self,
        *,
        config: AcceptConfig,
        tenants: TenantDirectory,
        store: BlobStore,
        repository: MessageRepository,
        queue: JobQueue,
    ) -> None:
        self._config = config
        self._tenants = tenants
        self._store = store
        self._repository = repository
        self._queue = queue
        # Concurrent accepts share one database transaction (DESIGN §4).
        self._records: GroupCommit[NewMessage, Recorded] = GroupCommit(repository.record_many)

    def check_recipient(self, address: str, smtputf8: bool) -> RecipientDecision:
        routed = self._route(address)
        if isinstance(routed, RecipientDecision):
            return routed
        try:
            tenant = self._tenants.resolve(routed.slug)
        except DirectoryUnavailable:
            log.warning("tenant directory unavailable", extra={"recipient": address})
            return RecipientDecision(address, addressing.DIRECTORY_UNAVAILABLE)
        return _decision_for(address, tenant)

    def check_recipient_now(self, address: str, smtputf8: bool) -> RecipientDecision | None:
        """The same decision as :meth:`check_recipient` when it needs no I/O (a
        refusal by address, or a tenant answer still in the cache); None when the
        directory must be asked. Lets an event loop skip a worker thread."""
        routed = self._route(address)
        if isinstance(routed, RecipientDecision):
            return routed
        cached = self._tenants.peek(routed.slug)
        return None if isinstance(cached, NotCached) else _decision_for(address, cached)

    def _route(self, address: str) -> addressing.Route | RecipientDecision:
        """The tenant route of an address, or the refusal decided by the address alone."""
        if addressing.is_role_address(address, self._config.domains):
            return RecipientDecision(address, ROLE_ADDRESS)
        routed = addressing.route(
            address, domains=self._config.domains, mailbox=self._config.mailbox
        )
        return RecipientDecision(address, routed) if isinstance(routed, Reply) else routed

    def accept(self, envelope: Envelope, spool: Spool) -> list[RecipientOutcome]:
        """One outcome per accepted recipient, in RCPT order."""
        with tracer.start_as_current_span("accept") as span:
            span.set_attribute("message.size", spool.size)
            span.set_attribute("message.recipients", len(envelope.recipients))
            with spool.open() as source:
                headers = summarise(read_head(source))
            replies: dict[object, tuple[Reply, Recorded | None]] = {}
            outcomes: list[RecipientOutcome] = []
            for decision in envelope.recipients:
                tenant = decision.tenant
                if tenant is None:
                    raise ValueError("accept() takes accepted recipients only")
                started = time.monotonic()
                if tenant.id not in replies:
                    replies[tenant.id] = self._accept_for(
                        tenant, decision, envelope, spool, headers
                    )
                reply, recorded = replies[tenant.id]
                outcome = RecipientOutcome(
                    decision.address, reply, recorded.id if recorded else None
                )
                _log_outcome(outcome, tenant, headers, spool, recorded, time.monotonic() - started)
                outcomes.append(outcome)
            return outcomes

    def _accept_for(
        self,
        tenant: Tenant,
        decision: RecipientDecision,
        envelope: Envelope,
        spool: Spool,
        headers: HeaderSummary,
    ) -> tuple[Reply, Recorded | None]:
        key = raw_object_key(tenant, spool.sha256)
        try:
            with tracer.start_as_current_span("blob.put"):
                self._store.put(key, spool)
            with tracer.start_as_current_span("db.insert"):
                recorded = self._records.submit(
                    _new_message(tenant, decision.address, envelope, spool, headers, key)
                )
        except StoreUnavailable as exc:
            log.warning(
                "storage unavailable", extra={"org_id": str(tenant.id), "error": type(exc).__name__}
            )
            return STORAGE_UNAVAILABLE, None
        if recorded.kind is RecordKind.CONFLICT_STORED:
            log.warning(
                "Message-ID reused for different content; stored as its own row",
                extra={"org_id": str(tenant.id), "message_id": str(recorded.id)},
            )
        if recorded.kind is not RecordKind.DUPLICATE:
            self._enqueue(recorded)
        word = "duplicate" if recorded.kind is RecordKind.DUPLICATE else "accepted"
        return Reply(250, "2.0.0", f"{recorded.id} {word}"), recorded

    def _enqueue(self, recorded: Recorded) -> None:
        try:
            with tracer.start_as_current_span("enqueue"):
                self._queue.enqueue_extraction(recorded.id)
        except QueueUnavailable:
            # The row is committed and stays RECEIVED: the sweeper enqueues it later.
            log.warning(
                "queue unavailable; left for the sweeper", extra={"message_id": str(recorded.id)}
            )
        except Exception:
            # Durable already: an unexpected queue error must not turn the 250 into
            # a 4xx. The sweeper finds the RECEIVED row.
            log.exception(
                "enqueue failed; left for the sweeper", extra={"message_id": str(recorded.id)}
            )


def _decision_for(address: str, tenant: Tenant | None) -> RecipientDecision:
    if tenant is None:
        return RecipientDecision(address, addressing.UNKNOWN_TENANT)
    if not tenant.active:
        return RecipientDecision(address, addressing.DISABLED_TENANT)
    return RecipientDecision(address, addressing.RECIPIENT_OK, tenant)


def _new_message(
    tenant: Tenant,
    recipient: str,
    envelope: Envelope,
    spool: Spool,
    headers: HeaderSummary,
    key: str,
) -> NewMessage:
    xforward = envelope.xforward
    return NewMessage(
        org_id=tenant.id,
        source_message_id=headers.message_id or f"sha256:{spool.content_sha256}",
        message_id_header=headers.message_id,
        sha256=spool.sha256,
        content_sha256=spool.content_sha256,
        size_bytes=spool.size,
        raw_object_key=key,
        envelope_from=envelope.mail_from,
        envelope_recipient=recipient,
        subject=headers.subject,
        from_header=headers.from_header,
        received_at=datetime.now(UTC),
        client_address=_xforward_value(xforward.get("ADDR")),
        client_helo=_xforward_value(xforward.get("HELO")),
        postfix_queue_id=_xforward_value(xforward.get("IDENT")),
    )


def _xforward_value(value: str | None) -> str | None:
    if value is None or value.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]"):
        return None
    return value[:255]


def _log_outcome(
    outcome: RecipientOutcome,
    tenant: Tenant,
    headers: HeaderSummary,
    spool: Spool,
    recorded: Recorded | None,
    duration: float,
) -> None:
    log.info(
        "recipient outcome",
        extra={
            "message_id": str(outcome.message_id) if outcome.message_id else None,
            "org_id": str(tenant.id),
            "message_id_header": headers.message_id,
            "size": spool.size,
            "outcome": recorded.kind.value if recorded else "temporary-failure",
            "code": outcome.reply.code,
            "duration_ms": round(duration * 1000, 2),
        },
    )
