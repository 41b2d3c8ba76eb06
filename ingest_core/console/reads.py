"""What the console's pages read: cross-tenant (an operator) or one tenant (a
tenant token's read-only view, ``org_slug`` set on every call)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from ingest_core.api.reads import Position

PAGE = 50


@dataclass(frozen=True, slots=True)
class MessageFilter:
    org_slug: str | None = None
    status: str | None = None
    automated: str | None = None  # a kind, "any" or "none"
    sender: str | None = None  # a part of the envelope sender or the From header
    subject: str | None = None  # a part of the subject
    since: datetime | None = None
    limit: int = PAGE
    after: Position | None = None


class ConsoleReads(Protocol):
    def messages(self, query: MessageFilter) -> list[dict[str, Any]]:
        """Newest first; each row with ``id``, ``org_slug``, ``status``, ``received_at`` …"""
        ...

    def message(self, message_id: uuid.UUID, org_slug: str | None) -> dict[str, Any] | None:
        """The row with ``attachments``, ``body``, ``events``, ``deliveries``, ``audit``."""
        ...

    def attachment(
        self, message_id: uuid.UUID, attachment_id: uuid.UUID, org_slug: str | None
    ) -> dict[str, Any] | None: ...

    def tenants(self, org_slug: str | None) -> list[dict[str, Any]]:
        """Each tenant with its policies (sender; ``held_kinds``: the automated
        kinds it holds), retention and ``counts`` {status: (24 h, 7 d)}."""
        ...

    def tenant_slugs(self) -> list[str]: ...


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
