"""Extraction jobs to the queue once the replies are out.

A job is not what keeps a message: its RECEIVED row is, committed before the
250. So an enqueue that fails is logged and left for the sweeper, which
re-enqueues RECEIVED rows older than ``INGEST_SWEEP_AGE_S``; it never turns
an accepted message into a 4xx.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import trace

from ingest_core.errors import QueueUnavailable
from ingest_core.telemetry import run_in, traceparent_of

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from ingest_core.ports import Job, JobQueue

log = logging.getLogger("ingest.accept")
tracer = trace.get_tracer("ingest_core.service")


def schedule(queue: JobQueue, jobs: Sequence[Job]) -> None:
    """Each job's extraction enqueued under an ``enqueue`` span in its delivery's
    context (so its log lines and trace read as the accept's); several jobs in
    one queue write."""
    if len(jobs) == 1:
        run_in(jobs[0].context, _enqueue_one, queue, jobs[0].message_id)
    elif jobs:
        _enqueue_many(queue, jobs)


def _enqueue_one(queue: JobQueue, message_id: uuid.UUID) -> None:
    try:
        with tracer.start_as_current_span("enqueue"):
            queue.enqueue_extraction(message_id)
    except QueueUnavailable:
        _left_for_sweeper(message_id, failed=False)
    except Exception:
        _left_for_sweeper(message_id, failed=True)


def _enqueue_many(queue: JobQueue, jobs: Sequence[Job]) -> None:
    spans = [run_in(job.context, tracer.start_span, "enqueue") for job in jobs]
    try:
        queue.enqueue_extractions(
            [(job.message_id, traceparent_of(span)) for job, span in zip(jobs, spans, strict=True)]
        )
    except QueueUnavailable:
        for job in jobs:
            run_in(job.context, _left_for_sweeper, job.message_id, failed=False)
    except Exception:
        for job in jobs:
            run_in(job.context, _left_for_sweeper, job.message_id, failed=True)
    finally:
        for span in spans:
            span.end()


def _left_for_sweeper(message_id: uuid.UUID, *, failed: bool) -> None:
    """Called while handling the queue's exception: an unexpected one (``failed``)
    is logged with its traceback."""
    extra = {"message_id": str(message_id)}
    if failed:
        log.exception("enqueue failed; left for the sweeper", extra=extra)
    else:
        log.warning("queue unavailable; left for the sweeper", extra=extra)
