"""Prometheus metrics of the serve process, on a private registry.

The LMTP server counts what it answers; two values come from elsewhere and are
read at scrape time: the queue depth (huey) and message counts by tenant and
status (Postgres; the workers are separate processes, so this is where
extraction outcomes show). Those are cached for ``cache_s`` and refreshed in a
worker thread with a deadline: a slow database delays no scrape beyond it.

Label values are bounded: ``reason`` comes from a fixed vocabulary and
``tenant`` is the slug of an existing tenant or empty, so a peer cannot create
series by inventing addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ingest_core import addressing
from ingest_core.errors import IngestError
from ingest_core.ports import Reason
from lmtpd.protocol import _replies

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from prometheus_client.metrics_core import Metric

    from ingest_core.ports import RecipientDecision, Reply
    from lmtpd.protocol import Reply as ProtocolReply

    # The core's replies to recipients and the protocol's own replies.
    AnyReply = Reply | ProtocolReply

log = logging.getLogger("ingest.metrics")
_T = TypeVar("_T")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACCEPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# What the protocol itself refuses of a RCPT command or a transaction: the
# server, not the core, decided those, so it names their reasons here.
_PROTOCOL_REASONS: dict[ProtocolReply, Reason] = {
    _replies.TOO_MANY_RECIPIENTS: Reason.TOO_MANY_RECIPIENTS,
    _replies.BAD_RECIPIENT: Reason.BAD_ADDRESS,
    _replies.NEEDS_SMTPUTF8: Reason.BAD_ADDRESS,
    _replies.BAD_RCPT_PARAM: Reason.BAD_ADDRESS,
}
REASONS = frozenset(reason.value for reason in Reason)


def outcome_for(reply: AnyReply) -> str:
    if reply.positive:
        return "accepted"
    return "deferred" if reply.temporary else "rejected"


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


class ServeMetrics:
    """The serve process's metrics; pass one to the servers (no global registry)."""

    def __init__(
        self,
        backlog: BacklogSource | None = None,
        *,
        cache_s: float = 10.0,
        scrape_timeout_s: float = 2.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.recipients = Counter(
            "ingest_lmtp_recipients",
            "LMTP recipients by final reply: accepted, rejected (5xx) or deferred (4xx).",
            ["outcome", "reason", "tenant"],
            registry=self.registry,
        )
        self.accept_duration = Histogram(
            "ingest_accept_duration_seconds",
            "From the end of a message's data to its replies (durable accept).",
            buckets=ACCEPT_BUCKETS,
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "ingest_received_bytes",
            "Message bytes received (after dot-unstuffing) by transactions that reached"
            " the end of data.",
            registry=self.registry,
        )
        self.milter_recipients = Counter(
            "ingest_milter_recipients",
            "RCPTs the milter answered at Postfix's SMTP edge: accepted, rejected or"
            " deferred, by reason and tenant (same vocabulary as the LMTP counter).",
            ["outcome", "reason", "tenant"],
            registry=self.registry,
        )
        self.protocol_refusals = Counter(
            "ingest_lmtp_protocol_refusals",
            "Replies the LMTP protocol gave on its own: malformed commands, bad"
            " sequences, limits (fixed replies, by code).",
            ["code", "enhanced"],
            registry=self.registry,
        )
        # Read from the LMTP server's own count at scrape time (LmtpServer sets it).
        self.connections_open = Gauge(
            "ingest_lmtp_connections_open", "Open LMTP connections.", registry=self.registry
        )
        self.backlog = _BacklogCollector(backlog, cache_s=cache_s, timeout_s=scrape_timeout_s)
        if backlog is not None:
            self.registry.register(self.backlog)

    def recipient_refused(self, decision: RecipientDecision) -> None:
        """A RCPT the server answered with 4xx/5xx."""
        self.recipient(decision.reply, decision.reason, _tenant_label(decision))

    def milter_decision(self, decision: RecipientDecision) -> None:
        """The milter's answer to one RCPT at the SMTP edge (before any LMTP)."""
        reply = decision.reply
        labels = (outcome_for(reply), decision.reason.value, _tenant_label(decision))
        self.milter_recipients.labels(*labels).inc()

    def protocol_refusal(self, reply: ProtocolReply) -> None:
        """A reply the protocol gave on its own (malformed command, bad sequence,
        limit); a refused RCPT also counts as a recipient."""
        self.protocol_refusals.labels(str(reply.code), reply.enhanced).inc()
        reason = _PROTOCOL_REASONS.get(reply)
        if reason is not None:
            self.recipient(reply, reason)

    def recipient(self, reply: AnyReply, reason: Reason, tenant: str = "") -> None:
        """``tenant``: the slug of an existing tenant, or empty."""
        self.recipients.labels(outcome_for(reply), reason.value, tenant).inc()

    def data_answered(
        self,
        accepted: Sequence[RecipientDecision],
        outcomes: Sequence[tuple[Reply, Reason]],
        size: int,
        seconds: float,
    ) -> None:
        """The end of data of one transaction and its replies, one per recipient."""
        self.accept_duration.observe(seconds)
        self.received_bytes.inc(size)
        for decision, (reply, reason) in zip(accepted, outcomes, strict=False):
            self.recipient(reply, reason, decision.tenant.slug if decision.tenant else "")

    def data_aborted(self, accepted: Sequence[RecipientDecision], reason: str) -> None:
        """A transaction the protocol ended after RCPT: too big, or a refused BDAT."""
        for decision in accepted:
            tenant = decision.tenant.slug if decision.tenant else ""
            if reason == "size":
                self.recipient(_replies.TOO_BIG, Reason.OVERSIZE, tenant)
            else:
                self.recipients.labels("rejected", Reason.ABORTED.value, tenant).inc()

    async def render(self, limiter: trio.CapacityLimiter) -> bytes:
        """The text exposition, after refreshing the scrape-time values if stale."""
        await self.backlog.refresh(limiter)
        return generate_latest(self.registry)


def backlog_collector(
    source: BacklogSource, *, cache_s: float = 10.0, timeout_s: float = 2.0
) -> _BacklogCollector:
    """The scrape-time collector alone (queue depth, message and verdict counts), for
    a registry that holds no LMTP counters: the supervisor of several serving
    processes reports these once, beside the merge of its processes' counters."""
    return _BacklogCollector(source, cache_s=cache_s, timeout_s=timeout_s)


def _tenant_label(decision: RecipientDecision) -> str:
    """The tenant of an accepted or disabled-tenant decision; else empty (a
    refused address must not create a series of its own)."""
    if decision.accepted and decision.tenant is not None:
        return decision.tenant.slug
    if decision.reason is not Reason.TENANT_DISABLED:
        return ""
    return decision.tenant.slug if decision.tenant is not None else _disabled_slug(decision)


def _disabled_slug(decision: RecipientDecision) -> str:
    """The slug of a disabled tenant, from the address it was refused for: that
    tenant exists (the directory said so), so the label stays bounded."""
    parts = addressing.split_address(decision.address)
    if parts is None:
        return ""
    slug = parts[0].partition("+")[2].lower()
    return slug if addressing.SLUG_PATTERN.fullmatch(slug) else ""


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
            self._snapshot = _Backlog(depth, messages, verdicts, automated, stored, webhooks)
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
