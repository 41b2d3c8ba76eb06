"""Operator actions recorded for later: the ``audit_event`` table's model and its
port. Release, replay, tenant and policy changes and exports write one event
each (``lmtpd.cli``); later features (tokens, endpoints, erasure) write theirs
through the same port. ``ingest audit`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One action: ``actor`` (the OS user, or a token's name) did ``action``
    (dotted, e.g. ``message.release``) for ``org_slug`` (None: several tenants or
    none) to ``scope`` (ids, filters, values; JSON-ready), changing ``count``
    things. ``at`` is set by the store when None."""

    actor: str
    action: str
    org_slug: str | None = None
    scope: Mapping[str, object] = field(default_factory=dict)
    count: int = 0
    at: datetime | None = None


class AuditLog(Protocol):
    def record(self, event: AuditEvent) -> None:
        """Append ``event``. Raises StoreUnavailable."""
        ...

    def events(
        self, *, since: datetime | None = None, org_slug: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """Newest first. Raises StoreUnavailable."""
        ...
