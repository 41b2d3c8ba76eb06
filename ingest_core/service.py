"""The durable-accept use case (docs/contracts.md, Durable accept) and its channel port."""

from __future__ import annotations

import contextvars
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

from ingest_core import addressing
from ingest_core.errors import (
    DirectoryUnavailable,
    RecordRejected,
    StoreUnavailable,
)
from ingest_core.group_commit import GroupCommit
from ingest_core.headers import HeaderSummary, read_head, summarise
from ingest_core.model import NewMessage, Recorded, RecordKind, Tenant
from ingest_core.ports import (
    AcceptedBatch,
    BlobStore,
    Delivery,
    Envelope,
    Job,
    JobQueue,
    MessageRepository,
    NotCached,
    Reason,
    RecipientDecision,
    RecipientOutcome,
    Reply,
    TenantDirectory,
)
from ingest_core.scheduling import schedule
from ingest_core.telemetry import run_in

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

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
        # Concurrent accepts share one database transaction (docs/contracts.md).
        self._records: GroupCommit[NewMessage, Recorded] = GroupCommit(repository.record_many)

    def check_recipient(self, address: str, smtputf8: bool) -> RecipientDecision:
        routed = self._route(address)
        if isinstance(routed, RecipientDecision):
            return routed
        try:
            tenant = self._tenants.resolve(routed.slug)
        except DirectoryUnavailable:
            log.warning("tenant directory unavailable", extra={"recipient": address})
            return RecipientDecision(
                address, addressing.DIRECTORY_UNAVAILABLE, reason=Reason.DIRECTORY_UNAVAILABLE
            )
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
            return RecipientDecision(address, ROLE_ADDRESS, reason=Reason.ROLE_ADDRESS)
        routed = addressing.route(
            address, domains=self._config.domains, mailbox=self._config.mailbox
        )
        if isinstance(routed, addressing.Refusal):
            return RecipientDecision(address, routed.reply, reason=routed.reason)
        return routed

    def accept(self, envelope: Envelope, spool: Spool) -> list[RecipientOutcome]:
        """One outcome per accepted recipient, in RCPT order; extraction enqueued.
        For callers with a thread per message: their rows share group commits."""
        batch = self._accept([Delivery(envelope, spool)], self._record_in_groups)
        self.schedule(batch.jobs)
        return batch.outcomes[0]

    def accept_batch(self, deliveries: Sequence[Delivery]) -> AcceptedBatch:
        """Several messages in one call: their objects written together (syncs
        shared), their rows in one transaction. Nothing is enqueued here: the
        caller replies first and then calls :meth:`schedule` (the rows are the
        truth; a job lost meanwhile is the sweeper's)."""
        return self._accept(deliveries, self._record_batch)

    def schedule(self, jobs: Sequence[Job]) -> None:
        """Enqueue the jobs' extractions (several in one queue write)."""
        schedule(self._queue, jobs)

    def _accept(
        self,
        deliveries: Sequence[Delivery],
        record: Callable[[Sequence[NewMessage]], list[Recorded | StoreUnavailable]],
    ) -> AcceptedBatch:
        started = time.monotonic()
        batch = [_Accepting(d, d.context or contextvars.copy_context()) for d in deliveries]
        for accepting in batch:
            accepting.begin(self._config)
        with _timed() as put_time:
            puts = self._put_objects(batch)
        news = [(a, task) for a in batch for task in a.tasks if puts.get(task.key) is None]
        with _timed() as insert_time:
            results = record([task.message for _, task in news]) if news else []
        for (_, task), result in zip(news, results, strict=True):
            task.result = result
        jobs: list[Job] = []
        for accepting in batch:
            accepting.trace("blob.put", put_time)
            accepting.trace("db.insert", insert_time)
            for task in accepting.tasks:
                if task.result is None:
                    task.result = puts.get(task.key)
            jobs += run_in(accepting.context, accepting.finish, started)
        return AcceptedBatch([a.outcomes for a in batch], jobs)

    def _put_objects(self, batch: Sequence[_Accepting]) -> dict[str, StoreUnavailable | None]:
        items = {task.key: a.delivery.spool for a in batch for task in a.tasks}
        keys = list(items)
        try:
            errors = self._store.put_many([(key, items[key]) for key in keys])
        except StoreUnavailable as exc:
            errors = [exc] * len(keys)
        return dict(zip(keys, errors, strict=True))

    def _record_batch(self, messages: Sequence[NewMessage]) -> list[Recorded | StoreUnavailable]:
        """One transaction for all; when the database refuses the data, each on
        its own, so one bad row costs only its own message a 451."""
        try:
            return list(self._repository.record_many(messages))
        except RecordRejected:
            return [self._record_one(message) for message in messages]
        except StoreUnavailable as exc:
            return [exc] * len(messages)

    def _record_one(self, message: NewMessage) -> Recorded | StoreUnavailable:
        try:
            return self._repository.record_many([message])[0]
        except StoreUnavailable as exc:
            return exc

    def _record_in_groups(
        self, messages: Sequence[NewMessage]
    ) -> list[Recorded | StoreUnavailable]:
        results: list[Recorded | StoreUnavailable] = []
        for message in messages:
            try:
                results.append(self._records.submit(message))
            except StoreUnavailable as exc:
                results.append(exc)
        return results


@dataclass(slots=True)
class _Task:
    """One tenant's copy of a message: its object key, row and result."""

    tenant: Tenant
    key: str
    message: NewMessage
    result: Recorded | StoreUnavailable | None = None


@dataclass(slots=True)
class _Accepting:
    """One delivery on its way through a batch."""

    delivery: Delivery
    context: contextvars.Context
    tasks: list[_Task] = field(default_factory=list)
    headers: HeaderSummary | None = None
    span: trace.Span | None = None
    outcomes: list[RecipientOutcome] = field(default_factory=list)

    def begin(self, config: AcceptConfig) -> None:
        envelope, spool = self.delivery.envelope, self.delivery.spool
        self.span = self.context.run(tracer.start_span, "accept")
        self.span.set_attribute("message.size", spool.size)
        self.span.set_attribute("message.recipients", len(envelope.recipients))
        with spool.open() as source:
            self.headers = headers = summarise(read_head(source))
        seen: set[object] = set()
        for decision in envelope.recipients:
            tenant = decision.tenant
            if tenant is None:
                raise ValueError("accept() takes accepted recipients only")
            if tenant.id not in seen:
                seen.add(tenant.id)
                key = raw_object_key(tenant, spool.sha256)
                message = _new_message(tenant, decision.address, envelope, spool, headers, key)
                self.tasks.append(_Task(tenant, key, message))

    def trace(self, name: str, window: _Window) -> None:
        assert self.span is not None
        parent = trace.set_span_in_context(self.span)
        tracer.start_span(name, context=parent, start_time=window.start).end(window.end)

    def finish(self, started: float) -> list[Job]:
        """The replies, one log line per recipient, and the jobs to enqueue."""
        assert self.span is not None
        assert self.headers is not None
        by_tenant = {task.tenant.id: task for task in self.tasks}
        jobs: list[Job] = []
        for decision in self.delivery.envelope.recipients:
            assert decision.tenant is not None
            task = by_tenant[decision.tenant.id]
            reply, recorded, reason = _reply_for(task)
            message_id = recorded.id if recorded else None
            outcome = RecipientOutcome(decision.address, reply, message_id, reason=reason)
            self.outcomes.append(outcome)
            _log_outcome(
                outcome, task.tenant, self.headers, self.delivery.spool, recorded,
                time.monotonic() - started,
            )  # fmt: skip
        for task in self.tasks:
            recorded = task.result if isinstance(task.result, Recorded) else None
            if recorded is not None and recorded.kind is not RecordKind.DUPLICATE:
                jobs.append(Job(recorded.id, self._job_context()))
        self.span.end()
        return jobs

    def _job_context(self) -> contextvars.Context:
        """This delivery's context with the accept span current: the enqueue
        span becomes its child, and the job carries it to the extraction."""
        assert self.span is not None
        job_context = self.context.copy()
        job_context.run(otel_context.attach, trace.set_span_in_context(self.span))
        return job_context


def _reply_for(task: _Task) -> tuple[Reply, Recorded | None, Reason]:
    result = task.result
    if not isinstance(result, Recorded):
        log.warning(
            "storage unavailable",
            extra={"org_id": str(task.tenant.id), "error": type(result).__name__},
        )
        return STORAGE_UNAVAILABLE, None, Reason.STORAGE_UNAVAILABLE
    if result.kind is RecordKind.CONFLICT_STORED:
        log.warning(
            "Message-ID reused for different content; stored as its own row",
            extra={"org_id": str(task.tenant.id), "message_id": str(result.id)},
        )
    duplicate = result.kind is RecordKind.DUPLICATE
    word = "duplicate" if duplicate else "accepted"
    reason = Reason.DUPLICATE if duplicate else Reason.OK
    return Reply(250, "2.0.0", f"{result.id} {word}"), result, reason


@dataclass(slots=True)
class _Window:
    start: int = 0
    end: int = 0


@contextmanager
def _timed() -> Iterator[_Window]:
    window = _Window(time.time_ns())
    try:
        yield window
    finally:
        window.end = time.time_ns()


def _decision_for(address: str, tenant: Tenant | None) -> RecipientDecision:
    if tenant is None:
        return RecipientDecision(address, addressing.UNKNOWN_TENANT, reason=Reason.UNKNOWN_TENANT)
    if not tenant.active:
        return RecipientDecision(
            address, addressing.DISABLED_TENANT, tenant, reason=Reason.TENANT_DISABLED
        )
    return RecipientDecision(address, addressing.RECIPIENT_OK, tenant, reason=Reason.OK)


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
