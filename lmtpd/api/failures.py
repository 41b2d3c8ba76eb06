"""Failed authentications per client address over the last minute, for the
API's tokens and the console's sign-in: a bounded memory of recent failures
that says when an address has had its share."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class RecentFailures:
    """At most ``limit`` failures per address in any 60 s."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self._clock = limit, clock
        self._seen: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        seen = self._seen.get(address)
        if not seen:
            return False
        cutoff = self._clock() - 60.0
        while seen and seen[0] < cutoff:
            seen.popleft()
        if not seen:
            del self._seen[address]
        return len(seen) >= self.limit

    def add(self, address: str) -> None:
        if len(self._seen) > 100_000:  # bounded under a flood of addresses
            self._seen.clear()
        self._seen.setdefault(address, deque()).append(self._clock())
