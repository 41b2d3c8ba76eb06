"""The tenant lookup cache: answers kept for a while, failures never."""

from __future__ import annotations

import pytest

from ingest_core.adapters.memory import MemoryTenantDirectory
from ingest_core.errors import DirectoryUnavailable
from ingest_core.model import TenantStatus
from ingest_core.tenant_cache import CachingTenantDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingDirectory(MemoryTenantDirectory):
    calls = 0

    def resolve(self, slug: str):
        self.calls += 1
        return super().resolve(slug)


def make(ttl: float = 5.0, max_entries: int = 100):
    directory, clock = CountingDirectory(), Clock()
    return (
        directory,
        clock,
        CachingTenantDirectory(directory, ttl_s=ttl, clock=clock, max_entries=max_entries),
    )


def test_answers_are_cached_until_they_expire() -> None:
    directory, clock, cache = make()
    tenant = directory.add("acme")
    assert cache.resolve("acme") == tenant
    assert cache.resolve("nobody") is None
    directory.add("acme", TenantStatus.DISABLED)
    assert cache.resolve("acme") == tenant  # still the cached answer
    assert cache.resolve("nobody") is None
    assert directory.calls == 2
    clock.now += 5.01
    assert cache.resolve("acme").status is TenantStatus.DISABLED
    assert directory.calls == 3


def test_failures_are_not_cached() -> None:
    directory, _, cache = make()
    directory.add("acme")
    directory.unavailable = True
    with pytest.raises(DirectoryUnavailable):
        cache.resolve("acme")
    directory.unavailable = False
    assert cache.resolve("acme") is not None


def test_size_is_bounded_and_forget_drops_entries() -> None:
    _directory, _, cache = make(max_entries=3)
    for n in range(10):
        cache.resolve(f"t{n}")
    assert len(cache._entries) == 3
    cache.forget()
    assert len(cache._entries) == 0
