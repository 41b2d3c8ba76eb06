"""Prometheus metrics of the serve process, on a private registry.

The LMTP server counts what it answers here; the values read at scrape time
from Postgres and the queue (:mod:`lmtpd.backlog`) are registered beside them.

Label values are bounded: ``reason`` comes from a fixed vocabulary and
``tenant`` is the slug of an existing tenant or empty, so a peer cannot create
series by inventing addresses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ingest_core import addressing
from ingest_core.ports import Reason
from lmtpd.backlog import BacklogSource, _BacklogCollector
from lmtpd.protocol import _replies

if TYPE_CHECKING:
    from collections.abc import Sequence

    import trio

    from ingest_core.ports import RecipientDecision, Reply
    from lmtpd.protocol import Reply as ProtocolReply

    # The core's replies to recipients and the protocol's own replies.
    AnyReply = Reply | ProtocolReply

log = logging.getLogger("ingest.metrics")

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
