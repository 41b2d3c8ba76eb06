"""Operator use cases over the ports: replay, release and the sweep (``ingest
replay``, ``ingest messages release``, ``ingest sweep`` and the worker's
periodic ``ingest.sweep``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ingest_core.errors import QueueUnavailable

if TYPE_CHECKING:
    import uuid

    from ingest_core.ports import JobQueue, MessageRepository

log = logging.getLogger("ingest.bootstrap")
sweep_log = logging.getLogger("ingest.extraction")


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """What the sweep needs of the settings."""

    received_age_s: float  # a RECEIVED row older than this lost its job
    claim_lease_s: float  # a PROCESSING claim older than this lost its worker


def sweep(
    repository: MessageRepository,
    queue: JobQueue,
    config: SweepConfig,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Re-enqueue RECEIVED rows older than ``received_age_s`` and PROCESSING rows
    whose claim is older than ``claim_lease_s``. Raises QueueUnavailable if the
    queue refuses (the rest are found again by the next sweep)."""
    now = now or datetime.now(UTC)
    stale = repository.stale(
        received_before=now - timedelta(seconds=config.received_age_s),
        claimed_before=now - timedelta(seconds=config.claim_lease_s),
    )
    for message_id in stale:
        queue.enqueue_extraction(message_id)
    sweep_log.info("sweep re-enqueued %d messages", len(stale), extra={"requeued": len(stale)})
    return stale


def replay(repository: MessageRepository, queue: JobQueue, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Back to RECEIVED and enqueued; returns the ids that exist."""
    done = []
    for message_id in ids:
        if repository.reset_for_replay(message_id):
            enqueue(queue, message_id)
            done.append(message_id)
    return done


def release(repository: MessageRepository, queue: JobQueue, message_id: uuid.UUID) -> bool:
    """A QUARANTINED message goes on to extraction, exempt from the sender policy
    from now on. False if it is not quarantined."""
    if not repository.release(message_id):
        return False
    log.info("message released from quarantine", extra={"message_id": str(message_id)})
    enqueue(queue, message_id)
    return True


def enqueue(queue: JobQueue, message_id: uuid.UUID) -> None:
    """Enqueue, or leave the row RECEIVED for the sweeper if the queue refuses."""
    try:
        queue.enqueue_extraction(message_id)
    except QueueUnavailable:
        log.warning(
            "queue unavailable; the sweeper will enqueue it",
            extra={"message_id": str(message_id)},
        )
