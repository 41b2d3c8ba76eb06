"""Postfix's log read as it arrives: each message's accept and delivery
status, and the figures of a burst (rate, delays, reused connections)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from benchmarks.stats import percentile


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float
    delay_s: float
    delays_s: tuple[float, ...]
    status: str
    reused: bool
    reply: str


_ACTIVE = re.compile(
    r"postfix/qmgr\[\d+\]: (\w+): from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active"
)
_STATUS = re.compile(
    r"postfix/lmtp\[\d+\]: (\w+): to=<[^>]*>, .*?(conn_use=\d+, )?delay=([\d.]+), "
    r"delays=([\d./]+), dsn=[\d.]+, status=(\w+) \((.*)\)$"
)


@dataclass
class Maillog:
    """What the phase reads from Postfix's log. Postfix stamps its lines to the
    second only, so each line is stamped with the time it reached us instead (the
    log arrives on a pipe as postlogd writes it)."""

    accepted: dict[str, float] = field(default_factory=dict)  # queue id → first active
    outcomes: dict[str, Delivery] = field(default_factory=dict)  # queue id → last status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, line: str, at: float) -> None:
        if (active := _ACTIVE.search(line)) is not None:
            with self.lock:
                self.accepted.setdefault(active.group(1), at)
        elif (status := _STATUS.search(line)) is not None:
            queue_id, reused, delay, delays, outcome, reply = status.groups()
            delivery = Delivery(
                at=at,
                delay_s=float(delay),
                delays_s=tuple(float(d) for d in delays.split("/")),
                status=outcome,
                reused=reused is not None,
                reply=reply,
            )
            with self.lock:
                self.outcomes[queue_id] = delivery

    def counts(self) -> tuple[int, int]:
        """Messages accepted, and accepted ones without a delivery status yet."""
        with self.lock:
            pending = sum(1 for queue_id in self.accepted if queue_id not in self.outcomes)
            return len(self.accepted), pending

    def summary(self) -> dict[str, Any]:
        with self.lock:
            accepted = list(self.accepted.values())
            outcomes = list(self.outcomes.values())
        sent = [d for d in outcomes if d.status == "sent"]
        statuses: dict[str, int] = {}
        for delivery in outcomes:
            statuses[delivery.status] = statuses.get(delivery.status, 0) + 1
        first = min(accepted, default=None)
        window = max(accepted) - first if first is not None else None
        drain = max(d.at for d in sent) - first if first is not None and sent else None
        delays = [d.delay_s for d in sent]
        return {
            "accepted": len(accepted),
            "delivered": len(sent),
            "statuses": statuses,
            "duplicates": sum(1 for d in sent if "duplicate" in d.reply),
            "accept_window_s": _round(window),
            "accepted_per_s": _rate(len(accepted), window),
            "drain_s": _round(drain),
            "drained_per_s": _rate(len(sent), drain),
            "delay_s": {
                "p50": _pct(delays, 0.50),
                "p95": _pct(delays, 0.95),
                "max": max(delays, default=None),
            },
            "delays_p95_s": {
                part: _pct([d.delays_s[i] for d in sent if len(d.delays_s) == 4], 0.95)
                for i, part in enumerate(("before_qmgr", "in_qmgr", "connect", "transmit"))
            },
            "reused_connections": sum(1 for d in sent if d.reused),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if count and seconds else None


def _pct(values: list[float], fraction: float) -> float | None:
    return percentile(values, fraction) if values else None
