"""The console's audited actions and what its pages need, over the core's ports.

Release and replay are the core's operations (:mod:`ingest_core.operations`, the
ones ``ingest messages release`` and ``ingest replay`` run); each one done here
writes one audit event with the operator as actor and ``via: console``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core import operations
from ingest_core.audit import AuditEvent
from ingest_core.console.parts import MAX_TREE_BYTES, PartNode, part_tree
from ingest_core.errors import StoreUnavailable
from ingest_core.model import MessageStatus

if TYPE_CHECKING:
    import uuid

    from ingest_core.api.tokens import Tokens
    from ingest_core.audit import AuditLog
    from ingest_core.console.operators import Operators
    from ingest_core.console.reads import ConsoleReads
    from ingest_core.mime import MimeLimits
    from ingest_core.ports import BlobStore, JobQueue, MessageRepository

log = logging.getLogger("ingest.console")


@dataclass(frozen=True, slots=True)
class Console:
    operators: Operators
    reads: ConsoleReads
    tokens: Tokens
    store: BlobStore
    repository: MessageRepository
    queue: JobQueue
    audit: AuditLog
    secret: str
    secure_cookies: bool  # outside development the session cookie is Secure
    limits: MimeLimits

    def part_tree(self, raw_object_key: str, size: int) -> list[PartNode] | None:
        """The message's MIME tree, or None (too large, or not parseable within the limits)."""
        if size > MAX_TREE_BYTES:
            return None
        with self.store.open(raw_object_key) as source:
            return part_tree(source, self.limits)

    def release(self, message_id: uuid.UUID, actor: str) -> bool:
        """A QUARANTINED message goes on to extraction; False if it is not quarantined."""
        detail = self.reads.message(message_id, None)
        if detail is None or not operations.release(self.repository, self.queue, message_id):
            return False
        self._record(actor, "message.release", detail["org_slug"], message_id)
        return True

    def replay(self, message_id: uuid.UUID, actor: str) -> bool:
        """A FAILED message back to RECEIVED and enqueued; False if it is not FAILED."""
        detail = self.reads.message(message_id, None)
        if detail is None or detail["status"] != MessageStatus.FAILED:
            return False
        if not operations.replay(self.repository, self.queue, [message_id]):
            return False
        self._record(actor, "message.replay", detail["org_slug"], message_id)
        return True

    def _record(self, actor: str, action: str, slug: str, message_id: uuid.UUID) -> None:
        event = AuditEvent(actor, action, slug, {"ids": [str(message_id)], "via": "console"}, 1)
        try:
            self.audit.record(event)
        except StoreUnavailable:
            log.error("console action done but not audited", extra={"action": action})
            raise
