"""Scrape-time values for /metrics, read from elsewhere than the LMTP server.

The queue depth (huey) and counts by tenant from Postgres: messages by status
(the workers are separate processes, so this is where extraction outcomes
show), sender verdicts, automated mail, stored bytes and webhook deliveries.
They are cached for ``cache_s`` and refreshed in a worker thread with a
deadline: a slow database delays no scrape beyond it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ingest_core.errors import IngestError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from prometheus_client.metrics_core import Metric

log = logging.getLogger("ingest.metrics")
_T = TypeVar("_T")


class BacklogSource(Protocol):
    """What the scrape-time collectors read (``ingest_core.bootstrap.App``)."""

    def queue_depth(self) -> int: ...

    def message_counts(self) -> Mapping[tuple[str, str], int]:
        """Messages by (tenant slug, status)."""
        ...

    def verdict_counts(self) -> Mapping[tuple[str, str, str], int]:
        """Checked messages by (tenant slug, check, result); check is spf or dmarc."""
        ...

    def automated_counts(self) -> Mapping[tuple[str, str], int]:
        """Automated messages by (tenant slug, kind)."""
        ...

    def stored_bytes(self) -> Mapping[str, int]:
        """Bytes stored per tenant slug (raw messages and attachments)."""
        ...

    def last_purge(self) -> Mapping[str, int]:
        """What the last purge run removed: messages, objects, bytes."""
        ...

    def webhook_attempts(self) -> Mapping[tuple[str, str], int]:
        """Webhook delivery attempts by (tenant slug, outcome)."""
        ...

    def webhook_oldest_pending(self) -> Mapping[str, float]:
        """Age in seconds of each tenant's oldest undelivered delivery."""
        ...

    def webhook_attempt_latency(self) -> tuple[Sequence[tuple[float, int]], float]:
        """Attempt durations: cumulative (upper bound s, count) buckets ending with
        infinity, and the sum in seconds."""
        ...


def backlog_collector(
    source: BacklogSource, *, cache_s: float = 10.0, timeout_s: float = 2.0
) -> _BacklogCollector:
    """The scrape-time collector alone (queue depth, message and verdict counts), for
    a registry that holds no LMTP counters: the supervisor of several serving
    processes reports these once, beside the merge of its processes' counters."""
    return _BacklogCollector(source, cache_s=cache_s, timeout_s=timeout_s)


if TYPE_CHECKING:
    # Attempts by (tenant, outcome), the oldest pending age per tenant, and the
    # attempt latency (cumulative buckets, sum).
    _Webhooks = tuple[
        Mapping[tuple[str, str], int],
        Mapping[str, float],
        tuple[Sequence[tuple[float, int]], float],
    ]


@dataclass(frozen=True, slots=True)
class _Backlog:
    queue_depth: int | None
    messages: Mapping[tuple[str, str], int] | None
    verdicts: Mapping[tuple[str, str, str], int] | None = None
    automated: Mapping[tuple[str, str], int] | None = None
    stored: Mapping[str, int] | None = None
    webhooks: _Webhooks | None = None
    purge: Mapping[str, int] | None = None


class _BacklogCollector(Collector):
    """``ingest_queue_depth`` and ``ingest_messages`` from a cached snapshot.

    At most one refresh runs at a time: a refresh that outlives the scrape's
    deadline is abandoned by the scrape but still stores its result when done.
    A part that failed is left out of the exposition and
    ``ingest_backlog_scrape_ok{source}`` says 0.
    """

    def __init__(self, source: BacklogSource | None, *, cache_s: float, timeout_s: float) -> None:
        self._source = source
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._running = False
        self._taken_at = -float("inf")
        self._snapshot = _Backlog(None, None)

    async def refresh(self, limiter: trio.CapacityLimiter) -> None:
        if self._source is None or time.monotonic() - self._taken_at < self._cache_s:
            return
        with self._lock:
            if self._running:
                return
            self._running = True
        with trio.move_on_after(self._timeout_s) as scope:
            await trio.to_thread.run_sync(self._take, limiter=limiter, abandon_on_cancel=True)
        if scope.cancelled_caught:
            log.warning("metrics backlog refresh exceeded its deadline; serving the last values")

    def _take(self) -> None:
        """In a worker thread."""
        assert self._source is not None
        try:
            depth = _read(self._source.queue_depth, "queue depth")
            # Published at once: a slow database must not hide the queue's depth.
            last = self._snapshot
            self._snapshot = _Backlog(
                depth, last.messages, last.verdicts, last.automated, last.stored, last.webhooks
            )
            messages = _read(self._source.message_counts, "message counts")
            # Same database: once it failed, asking again would only double the wait.
            verdicts = (
                _read(self._source.verdict_counts, "sender verdict counts")
                if messages is not None
                else None
            )
            automated = (
                _read(self._source.automated_counts, "automated message counts")
                if messages is not None
                else None
            )
            stored = (
                _read(self._source.stored_bytes, "stored bytes") if messages is not None else None
            )
            webhooks = _read(self._webhooks, "webhook deliveries") if messages is not None else None
            purge = (
                _read(self._source.last_purge, "last purge run") if messages is not None else None
            )
            self._snapshot = _Backlog(depth, messages, verdicts, automated, stored, webhooks, purge)
            self._taken_at = time.monotonic()
        finally:
            with self._lock:
                self._running = False

    def _webhooks(self) -> _Webhooks:
        assert self._source is not None
        source = self._source
        return (
            source.webhook_attempts(),
            source.webhook_oldest_pending(),
            source.webhook_attempt_latency(),
        )

    def describe(self) -> list[Metric]:
        return list(self._families(_Backlog(None, None)))

    def collect(self) -> Iterator[Metric]:
        return self._families(self._snapshot)

    @staticmethod
    def _families(snapshot: _Backlog) -> Iterator[Metric]:
        depth = GaugeMetricFamily("ingest_queue_depth", "Extraction jobs waiting in the queue.")
        if snapshot.queue_depth is not None:
            depth.add_metric([], snapshot.queue_depth)
        yield depth
        messages = GaugeMetricFamily(
            "ingest_messages",
            "Inbound messages by tenant and status (RECEIVED, PROCESSING, PROCESSED,"
            " FAILED, QUARANTINED), read from the database at scrape time.",
            labels=["tenant", "status"],
        )
        for (tenant, status), count in sorted((snapshot.messages or {}).items()):
            messages.add_metric([tenant, status], count)
        yield messages
        verdicts = GaugeMetricFamily(
            "ingest_sender_verdicts",
            "Checked messages by tenant, check (spf, dmarc) and result, read from the"
            " database at scrape time.",
            labels=["tenant", "check", "result"],
        )
        for (tenant, check, result), count in sorted((snapshot.verdicts or {}).items()):
            verdicts.add_metric([tenant, check, result], count)
        yield verdicts
        automated = GaugeMetricFamily(
            "ingest_automated_messages",
            "Messages classified as automated mail, by tenant and kind (auto-reply,"
            " bounce, feedback-report, list, bulk), read from the database at scrape time.",
            labels=["tenant", "kind"],
        )
        for (tenant, kind), count in sorted((snapshot.automated or {}).items()):
            automated.add_metric([tenant, kind], count)
        yield automated
        stored = GaugeMetricFamily(
            "ingest_stored_bytes",
            "Bytes stored per tenant (raw messages and attachments as their rows count"
            " them), read from the database at scrape time.",
            labels=["tenant"],
        )
        for tenant, size in sorted((snapshot.stored or {}).items()):
            stored.add_metric([tenant], size)
        yield stored
        yield from _webhook_families(snapshot.webhooks)
        purged = GaugeMetricFamily(
            "ingest_purge_last_run_removed",
            "What the last purge run removed (messages, objects, bytes), read from the"
            " database at scrape time.",
            labels=["what"],
        )
        for what, count in sorted((snapshot.purge or {}).items()):
            purged.add_metric([what], count)
        yield purged
        ok = GaugeMetricFamily(
            "ingest_backlog_scrape_ok",
            "1 if the last read of a scrape-time source succeeded.",
            labels=["source"],
        )
        ok.add_metric(["queue"], int(snapshot.queue_depth is not None))
        ok.add_metric(["messages"], int(snapshot.messages is not None))
        ok.add_metric(["verdicts"], int(snapshot.verdicts is not None))
        ok.add_metric(["automated"], int(snapshot.automated is not None))
        ok.add_metric(["stored"], int(snapshot.stored is not None))
        ok.add_metric(["webhooks"], int(snapshot.webhooks is not None))
        ok.add_metric(["purge"], int(snapshot.purge is not None))
        yield ok


def _webhook_families(webhooks: _Webhooks | None) -> Iterator[Metric]:
    attempts, oldest, (buckets, total_s) = webhooks or ({}, {}, ((), 0.0))
    deliveries = CounterMetricFamily(
        "ingest_webhook_deliveries",
        "Webhook delivery attempts by tenant and outcome (delivered, http_error,"
        " no_answer), counted from the delivery log at scrape time.",
        labels=["tenant", "outcome"],
    )
    for (tenant, outcome), count in sorted(attempts.items()):
        deliveries.add_metric([tenant, outcome], count)
    yield deliveries
    pending = GaugeMetricFamily(
        "ingest_webhook_oldest_pending_seconds",
        "Age of each tenant's oldest undelivered webhook delivery, read at scrape time.",
        labels=["tenant"],
    )
    for tenant, age in sorted(oldest.items()):
        pending.add_metric([tenant], age)
    yield pending
    latency = HistogramMetricFamily(
        "ingest_webhook_attempt_duration_seconds",
        "Duration of webhook delivery attempts (connect to response, or the error),"
        " from the delivery log at scrape time.",
    )
    if buckets:
        latency.add_metric([], [(_bound(le), count) for le, count in buckets], sum_value=total_s)
    yield latency


def _bound(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(le)


def _read(read: Callable[[], _T], what: str) -> _T | None:
    try:
        return read()
    except IngestError as exc:
        log.warning("metrics: %s unavailable", what, extra={"error": str(exc)})
    except Exception:
        log.exception("metrics: reading %s failed", what)
    return None
