"""In-memory fakes of the ports, for unit tests of the core and the server only."""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.automated import AutomatedPolicy
from ingest_core.errors import (
    ObjectNotFound,
    QueueUnavailable,
    RecordRejected,
    StoreUnavailable,
)
from ingest_core.events import EventType, OutboxEvent
from ingest_core.model import (
    Attachment,
    AuthVerdict,
    AutomatedVerdict,
    MessageStatus,
    NewMessage,
    Recorded,
    RecordKind,
    StoredMessage,
    Tenant,
    TenantStatus,
)
from ingest_core.ports import NOT_CACHED, NotCached
from ingest_core.sender.policy import SenderRules

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ingest_core.audit import AuditEvent
    from ingest_core.bodies import MessageBody
    from ingest_core.spool import Spool


class MemoryTenantDirectory:
    def __init__(self, tenants: Sequence[Tenant] = ()) -> None:
        self.tenants = {t.slug: t for t in tenants}
        self.unavailable = False

    def add(self, slug: str, status: TenantStatus = TenantStatus.ACTIVE) -> Tenant:
        tenant = Tenant(id=uuid.uuid4(), slug=slug, name=slug, status=status)
        self.tenants[slug] = tenant
        return tenant

    def resolve(self, slug: str) -> Tenant | None:
        if self.unavailable:
            from ingest_core.errors import DirectoryUnavailable

            raise DirectoryUnavailable("tenant directory unavailable (fake)")
        return self.tenants.get(slug)

    def peek(self, slug: str) -> Tenant | NotCached | None:
        return NOT_CACHED  # like the database: always asked, in a worker thread


class MemoryBlobStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}
        self.failing = False
        self._lock = threading.Lock()

    def put(self, key: str, spool: Spool) -> None:
        with spool.open() as source:
            self.put_file(key, source, spool.size)

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        errors: list[StoreUnavailable | None] = []
        for key, spool in items:
            try:
                self.put(key, spool)
                errors.append(None)
            except StoreUnavailable as exc:
                errors.append(exc)
        return errors

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        if self.failing:
            raise StoreUnavailable("object store unavailable (fake)")
        data = source.read()
        with self._lock:
            self.objects[key] = data
            self.modified[key] = time.time()

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        if self.failing:
            raise StoreUnavailable("object store unavailable (fake)")
        with self._lock:
            listed = [(key, self.modified.get(key, 0.0)) for key in self.objects]
        return iter([(key, at) for key, at in listed if key.startswith(prefix)])

    def open(self, key: str) -> BinaryIO:
        if self.failing:
            raise StoreUnavailable("object store unavailable (fake)")
        try:
            return io.BytesIO(self.objects[key])
        except KeyError:
            raise ObjectNotFound(key) from None

    def ping(self) -> None:
        if self.failing:
            raise StoreUnavailable("object store unavailable (fake)")

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, key: str) -> None:
        if self.failing:
            raise StoreUnavailable("object store unavailable (fake)")
        with self._lock:
            self.objects.pop(key, None)


class MemoryMessageRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, StoredMessage] = {}
        self.attachments: dict[uuid.UUID, dict[str, Attachment]] = {}
        self.bodies: dict[uuid.UUID, MessageBody] = {}
        self.events: list[OutboxEvent] = []  # the outbox, written with each change
        self.retry_at: dict[uuid.UUID, datetime] = {}  # the column, for pending retries
        self.failing = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.failing:
            raise StoreUnavailable("database unavailable (fake)")

    def record_received(self, message: NewMessage) -> Recorded:
        self._check()
        with self._lock:
            for row in self.rows.values():
                if (row.org_id, row.source_message_id) == (
                    message.org_id,
                    message.source_message_id,
                ):
                    if row.content_sha256 == message.content_sha256:
                        return Recorded(RecordKind.DUPLICATE, row.id)
                    alt = f"{message.source_message_id}#{message.content_sha256[:16]}"
                    recorded = self._insert(replace(message, source_message_id=alt), conflict=True)
                    break
            else:
                recorded = self._insert(message, conflict=False)
            if recorded.kind is not RecordKind.DUPLICATE:
                self.events.append(OutboxEvent(EventType.RECEIVED, recorded.id))
            return recorded

    def record_many(self, messages: Sequence[NewMessage]) -> list[Recorded]:
        """All or nothing, like one database transaction."""
        self._check()
        if any(message.size_bytes < 0 for message in messages):  # the schema's CHECK
            raise RecordRejected("record messages: data refused (fake)")
        with self._lock:
            snapshot, events = dict(self.rows), list(self.events)
        try:
            return [self.record_received(message) for message in messages]
        except BaseException:
            with self._lock:
                self.rows, self.events = snapshot, events
            raise

    def _insert(self, message: NewMessage, *, conflict: bool) -> Recorded:
        for row in self.rows.values():
            if (row.org_id, row.source_message_id) == (message.org_id, message.source_message_id):
                return Recorded(RecordKind.DUPLICATE, row.id)
        new_id = uuid.uuid4()
        self.rows[new_id] = StoredMessage(
            id=new_id,
            org_id=message.org_id,
            source_message_id=message.source_message_id,
            sha256=message.sha256,
            content_sha256=message.content_sha256,
            size_bytes=message.size_bytes,
            raw_object_key=message.raw_object_key,
            envelope_from=message.envelope_from,
            envelope_recipient=message.envelope_recipient,
            subject=message.subject,
            from_header=message.from_header,
            received_at=message.received_at,
            status=MessageStatus.RECEIVED,
            attempts=0,
            client_address=message.client_address,
            client_helo=message.client_helo,
            postfix_queue_id=message.postfix_queue_id,
        )
        return Recorded(RecordKind.CONFLICT_STORED if conflict else RecordKind.CREATED, new_id)

    def get(self, org_id: uuid.UUID, message_id: uuid.UUID) -> StoredMessage | None:
        self._check()
        row = self.rows.get(message_id)
        return row if row is not None and row.org_id == org_id else None

    def claim(self, message_id: uuid.UUID, lease_s: float) -> StoredMessage | None:
        self._check()
        now = datetime.now(UTC)
        with self._lock:
            row = self.rows.get(message_id)
            if row is None:
                return None
            expired = (
                row.status is MessageStatus.PROCESSING
                and row.claimed_at is not None
                and row.claimed_at < now - timedelta(seconds=lease_s)
            )
            if row.status is not MessageStatus.RECEIVED and not expired:
                return None
            row = replace(
                row, status=MessageStatus.PROCESSING, attempts=row.attempts + 1, claimed_at=now
            )
            self.rows[message_id] = row
            self.retry_at.pop(message_id, None)
            return row

    def finish(
        self,
        message_id: uuid.UUID,
        attachments: Sequence[Attachment],
        parser_version: str,
        body: MessageBody | None = None,
    ) -> None:
        """The new manifest (and body) replaces the old one whole, as on Postgres
        (where a surviving part path also keeps its row id; attachments here have
        none)."""
        self._check()
        with self._lock:
            self.attachments[message_id] = {a.part_path: a for a in attachments}
            if body is not None:
                self.bodies[message_id] = body
            self.rows[message_id] = replace(
                self.rows[message_id],
                status=MessageStatus.PROCESSED,
                parser_version=parser_version,
                processed_at=datetime.now(UTC),
                last_error=None,
            )
            self.events.append(OutboxEvent(EventType.PROCESSED, message_id))

    def fail(
        self, message_id: uuid.UUID, error: str, *, final: bool, retry_in_s: float = 0.0
    ) -> None:
        self._check()
        with self._lock:
            self.retry_at.pop(message_id, None)
            if not final:
                due = datetime.now(UTC) + timedelta(seconds=max(retry_in_s, 0.0))
                self.retry_at[message_id] = due
            self.rows[message_id] = replace(
                self.rows[message_id],
                status=MessageStatus.FAILED if final else MessageStatus.RECEIVED,
                last_error=error,
                claimed_at=None,
            )
            if final:
                self.events.append(OutboxEvent(EventType.FAILED, message_id))

    def record_auth(self, message_id: uuid.UUID, verdict: AuthVerdict) -> None:
        self._check()
        with self._lock:
            self.rows[message_id] = replace(self.rows[message_id], auth=verdict)

    def record_automated(self, message_id: uuid.UUID, verdict: AutomatedVerdict) -> None:
        self._check()
        with self._lock:
            self.rows[message_id] = replace(self.rows[message_id], automated=verdict)

    def quarantine(self, message_id: uuid.UUID, reason: str) -> None:
        self._check()
        with self._lock:
            row = self.rows[message_id]
            if row.status is MessageStatus.PROCESSING:
                self.rows[message_id] = replace(
                    row,
                    status=MessageStatus.QUARANTINED,
                    quarantine_reason=reason,
                    claimed_at=None,
                    last_error=None,
                )
                self.events.append(OutboxEvent(EventType.QUARANTINED, message_id))

    def release(self, message_id: uuid.UUID) -> bool:
        self._check()
        with self._lock:
            row = self.rows.get(message_id)
            if row is None or row.status is not MessageStatus.QUARANTINED:
                return False
            self.rows[message_id] = replace(
                row,
                status=MessageStatus.RECEIVED,
                released_at=datetime.now(UTC),
                attempts=0,
                claimed_at=None,
            )
            self.retry_at.pop(message_id, None)
            self.events.append(OutboxEvent(EventType.RELEASED, message_id))
            return True

    def list_attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[Attachment]:
        self._check()
        if self.get(org_id, message_id) is None:
            return []
        found = self.attachments.get(message_id, {})
        return [found[k] for k in sorted(found)]

    def stale(self, received_before: datetime, claimed_before: datetime) -> list[uuid.UUID]:
        self._check()
        return [
            row.id
            for row in self.rows.values()
            if (
                row.status is MessageStatus.RECEIVED
                and max(row.received_at, self.retry_at.get(row.id, row.received_at))
                < received_before
            )
            or (
                row.status is MessageStatus.PROCESSING
                and row.claimed_at is not None
                and row.claimed_at < claimed_before
            )
        ]

    def reset_for_replay(self, message_id: uuid.UUID) -> bool:
        self._check()
        with self._lock:
            row = self.rows.get(message_id)
            if row is None:
                return False
            self.rows[message_id] = replace(
                row, status=MessageStatus.RECEIVED, attempts=0, claimed_at=None
            )
            self.retry_at.pop(message_id, None)
            return True

    def ids_with_status(self, status: MessageStatus, org_id: uuid.UUID | None) -> list[uuid.UUID]:
        self._check()
        return [
            r.id
            for r in self.rows.values()
            if r.status is status and (org_id is None or r.org_id == org_id)
        ]


class MemorySenderRules:
    """``SenderRulesSource``: rules by org id; ``monitor`` for anyone not set."""

    def __init__(self) -> None:
        self.rules: dict[uuid.UUID, SenderRules] = {}

    def rules_for(self, org_id: uuid.UUID) -> SenderRules:
        return self.rules.get(org_id, SenderRules())


class MemoryAutomatedPolicies:
    """``AutomatedPolicySource``: policies by org id; the defaults for anyone not set."""

    def __init__(self) -> None:
        self.policies: dict[uuid.UUID, AutomatedPolicy] = {}

    def policy_for(self, org_id: uuid.UUID) -> AutomatedPolicy:
        return self.policies.get(org_id, AutomatedPolicy())


class MemoryJobQueue:
    def __init__(self) -> None:
        self.jobs: list[uuid.UUID] = []
        self.failing = False

    def enqueue_extraction(self, message_id: uuid.UUID) -> None:
        if self.failing:
            raise QueueUnavailable("queue unavailable (fake)")
        self.jobs.append(message_id)

    def enqueue_extractions(self, jobs: Sequence[tuple[uuid.UUID, str | None]]) -> None:
        if self.failing:
            raise QueueUnavailable("queue unavailable (fake)")
        self.jobs.extend(message_id for message_id, _ in jobs)


class MemoryAuditLog:
    """``AuditLog`` in a list (tests)."""

    def __init__(self) -> None:
        self.recorded: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.recorded.append(replace(event, at=event.at or datetime.now(UTC)))

    def events(
        self, *, since: datetime | None = None, org_slug: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        found = [
            event
            for event in reversed(self.recorded)
            if (since is None or (event.at is not None and event.at >= since))
            and (org_slug is None or event.org_slug == org_slug)
        ]
        return found[:limit]
