"""When a failed delivery is tried again: the Standard Webhooks example schedule
(immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) with jitter, and the
receiver's ``Retry-After`` on 429, 502, 503 and 504."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Delay before attempt n+1 after attempt n failed (index n-1); the first attempt
# is immediate. After the last one the delivery is FAILED.
RETRY_DELAYS_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER_S = 36000.0


def next_delay(
    attempts: int,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones, or None when
    the delivery has used them all. A ``Retry-After`` longer than the schedule's
    delay wins (bounded by the longest step)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_S[attempts - 1]
    delay = base * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
