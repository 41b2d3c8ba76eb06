"""Operator use cases over the ports: replay and release (``ingest replay``,
``ingest messages release``). The sweep is :func:`ingest_core.extraction.sweep`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ingest_core.errors import QueueUnavailable

if TYPE_CHECKING:
    import uuid

    from ingest_core.ports import JobQueue, MessageRepository

log = logging.getLogger("ingest.bootstrap")


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
