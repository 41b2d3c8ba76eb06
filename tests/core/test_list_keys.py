"""``BlobStore.list_keys`` on the in-memory fake and through the breaker."""

from __future__ import annotations

import pytest

from ingest_core.adapters.memory import MemoryBlobStore
from ingest_core.breaker import Breaker
from ingest_core.errors import StoreUnavailable
from ingest_core.guarded import GuardedBlobStore
from ingest_core.spool import Spool


def test_the_fake_lists_keys_under_a_prefix_with_their_write_time() -> None:
    store = MemoryBlobStore()
    store.put("raw/a/1.eml", Spool.from_bytes(b"1"))
    store.put("attachments/a/2", Spool.from_bytes(b"2"))
    listed = dict(store.list_keys("raw/"))
    assert list(listed) == ["raw/a/1.eml"]
    assert listed["raw/a/1.eml"] > 0


def test_the_breaker_lists_through_and_counts_an_unreachable_store() -> None:
    store = MemoryBlobStore()
    store.put("raw/a/1.eml", Spool.from_bytes(b"1"))
    guarded = GuardedBlobStore(store, Breaker("s3", failures=1))
    assert [key for key, _ in guarded.list_keys("raw/")] == ["raw/a/1.eml"]
    assert list(guarded.list_keys("none/")) == []
    store.failing = True
    with pytest.raises(StoreUnavailable):
        list(guarded.list_keys("raw/"))
