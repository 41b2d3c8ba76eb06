"""Endpoints and deliveries: value objects and the port the Postgres adapter
implements (``ingest_core.adapters.postgres.webhooks``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    org_slug: str
    url: str
    event_types: tuple[str, ...]  # empty: every type
    created_at: datetime
    last_success_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    previous_until: datetime | None = None  # the rotated-out secret signs until then


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for one attempt (its lease taken, committed)."""

    id: int
    event_id: str
    endpoint_id: str
    org_slug: str
    url: str
    secrets: tuple[str, ...]  # stored (encrypted) form: the live one, the previous one
    body: bytes
    attempts: int  # including this one


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What an attempt ends in: ``next_in_s`` None with ``delivered`` False is
    FAILED for good; ``disable`` disables the endpoint with that reason."""

    status_code: int | None
    duration_s: float
    error: str | None
    delivered: bool
    next_in_s: float | None
    disable: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    org_slug: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime


class WebhookStore(Protocol):
    """Endpoints, the delivery log and the dispatcher's claims. Raises StoreUnavailable."""

    def add_endpoint(
        self, org_slug: str, url: str, event_types: Sequence[str], secret: str
    ) -> Endpoint: ...

    def endpoints(self, org_slug: str | None) -> list[Endpoint]: ...

    def set_disabled(self, endpoint_id: str, reason: str | None) -> Endpoint | None:
        """Disable with ``reason``, or enable when None; None if there is no such endpoint."""
        ...

    def remove_endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    def rotate_secret(self, endpoint_id: str, secret: str, overlap_s: float) -> Endpoint | None:
        """Make ``secret`` (stored form) the live one; the old one signs ``overlap_s`` more."""
        ...

    def claim_due(self, limit: int, lease_s: float) -> list[DueDelivery]:
        """Due pending deliveries of enabled endpoints, leased to this caller
        (FOR UPDATE SKIP LOCKED; the lease is committed before any request)."""
        ...

    def record_attempt(
        self, delivery: DueDelivery, result: AttemptResult, stale_s: float
    ) -> str | None:
        """Log the attempt and move the delivery on; a failure on an endpoint
        with no success for ``stale_s`` disables it. Returns why the endpoint was
        disabled now, or None."""
        ...

    def deliveries(
        self,
        *,
        org_slug: str | None = None,
        status: DeliveryStatus | None = None,
        endpoint_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]: ...

    def retry(
        self,
        *,
        delivery_id: int | None = None,
        endpoint_id: str | None = None,
        since: datetime | None = None,
    ) -> int:
        """Due now again: one delivery, an endpoint's, or those created since a
        time (FAILED or PENDING ones); returns how many."""
        ...

    def event(self, event_id: str) -> tuple[str, str, bytes] | None:
        """(type, tenant slug, payload) of one event."""
        ...
