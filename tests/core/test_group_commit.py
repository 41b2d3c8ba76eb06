"""Group commit: concurrent callers share batches, each gets its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from ingest_core.errors import RecordRejected, StoreUnavailable
from ingest_core.group_commit import GroupCommit


class Store:
    """Records what was committed, in which batch; can be made slow or failing."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.committed: set[int] = set()
        self.batches: list[list[int]] = []
        self.fail_with: Exception | None = None
        self.poison: int | None = None
        self.lock = threading.Lock()

    def commit(self, items: Sequence[int]) -> list[str]:
        time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        if self.poison is not None and self.poison in items:
            raise RecordRejected("refused")
        with self.lock:
            self.batches.append(list(items))
            self.committed.update(items)
        return [f"r{item}" for item in items]


def run_concurrently(group: GroupCommit[int, str], items: list[int], check) -> dict[int, object]:
    outcomes: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def call(item: int) -> None:
        start.wait()
        try:
            outcomes[item] = group.submit(item)
            check(item)
        except Exception as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_a_lone_caller_commits_alone() -> None:
    store = Store()
    group = GroupCommit(store.commit)
    assert group.submit(7) == "r7"
    assert store.batches == [[7]]


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    store = Store(delay_s=0.02)
    group = GroupCommit(store.commit, max_batch=16)
    items = list(range(40))

    def committed_before_return(item: int) -> None:
        assert item in store.committed  # nobody returns before its batch committed

    outcomes = run_concurrently(group, items, committed_before_return)
    assert outcomes == {item: f"r{item}" for item in items}
    assert sorted(i for batch in store.batches for i in batch) == items
    assert len(store.batches) < len(items)  # batches formed
    assert max(len(batch) for batch in store.batches) <= 16


def test_an_unavailable_store_fails_every_caller_of_the_batch() -> None:
    store = Store(delay_s=0.01)
    store.fail_with = StoreUnavailable("down")
    group = GroupCommit(store.commit)
    outcomes = run_concurrently(group, list(range(10)), lambda item: None)
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes.values())
    store.fail_with = None
    assert group.submit(99) == "r99"  # and the next batch works


def test_refused_data_fails_only_the_culprit() -> None:
    store = Store(delay_s=0.01)
    store.poison = 3
    group = GroupCommit(store.commit)
    outcomes = run_concurrently(group, list(range(8)), lambda item: None)
    assert isinstance(outcomes[3], RecordRejected)
    assert {item: outcome for item, outcome in outcomes.items() if item != 3} == {
        item: f"r{item}" for item in range(8) if item != 3
    }


def test_an_unexpected_error_reaches_the_caller() -> None:
    def broken(items: Sequence[int]) -> list[str]:
        return []  # wrong number of results

    with pytest.raises(RuntimeError, match="one result per item"):
        GroupCommit(broken).submit(1)
