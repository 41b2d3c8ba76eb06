"""A short-lived cache in front of a TenantDirectory.

Every RCPT asks the directory; at a few hundred messages a second that is one
database round trip per message for an answer that changes a few times a year.
Answers (found or not) are kept for ``ttl_s`` seconds, so enabling or disabling a
tenant takes effect within that time. Failures are never cached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from threading import Lock
from typing import TYPE_CHECKING

from ingest_core.ports import NOT_CACHED, NotCached

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.model import Tenant
    from ingest_core.ports import TenantDirectory


class CachingTenantDirectory:
    def __init__(
        self,
        directory: TenantDirectory,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Tenant | None]] = OrderedDict()
        self._lock = Lock()

    def resolve(self, slug: str) -> Tenant | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(slug)
            if cached is not None and cached[0] > now:
                return cached[1]
        tenant = self._directory.resolve(slug)  # DirectoryUnavailable propagates
        with self._lock:
            self._entries[slug] = (now + self._ttl_s, tenant)
            self._entries.move_to_end(slug)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return tenant

    def peek(self, slug: str) -> Tenant | NotCached | None:
        """The live cached answer, or NOT_CACHED; never asks the directory."""
        with self._lock:
            cached = self._entries.get(slug)
        if cached is None or cached[0] <= self._clock():
            return NOT_CACHED
        return cached[1]

    def forget(self, slug: str | None = None) -> None:
        """Drop one slug (or everything), e.g. right after an administrative change."""
        with self._lock:
            if slug is None:
                self._entries.clear()
            else:
                self._entries.pop(slug, None)
