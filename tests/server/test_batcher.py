"""The accept batcher: one thread hop per batch, each caller its own result."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from lmtpd.batcher import AcceptBatcher


async def test_concurrent_submissions_share_batches_and_get_their_own_results():
    threads: set[int] = set()
    sizes: list[int] = []
    gate = threading.Event()

    def run_batch(items):
        threads.add(threading.get_ident())
        sizes.append(len(items))
        gate.wait(5)  # the first batch holds the lane while the others queue
        return [item * 10 for item in items], None

    batcher: AcceptBatcher[int, int] = AcceptBatcher(run_batch, max_batch=64, lanes=1)
    results: dict[int, int] = {}

    async def one(n: int) -> None:
        results[n] = await batcher.submit(n)

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n in range(50):
                callers.start_soon(one, n)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        batcher.close()
    assert results == {n: n * 10 for n in range(50)}
    assert sum(sizes) == 50
    assert len(sizes) < 50  # batched, not one hop per message
    assert batcher.batches == len(sizes)


async def test_a_failing_batch_fails_each_of_its_callers_and_the_lane_goes_on():
    calls = 0

    def run_batch(items):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk gone")
        return list(items), None

    batcher: AcceptBatcher[int, int] = AcceptBatcher(run_batch, lanes=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        with pytest.raises(OSError, match="disk gone"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2
        batcher.close()


async def test_a_cancelled_caller_still_waits_for_its_batch():
    """The thread may be reading the caller's spool: cancellation must not let
    the caller go (and discard it) before the batch is done."""
    finished = threading.Event()
    release = threading.Event()

    def run_batch(items):
        release.wait(5)
        finished.set()
        return list(items), None

    batcher: AcceptBatcher[int, int] = AcceptBatcher(run_batch, lanes=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        nursery.start_soon(_release_after, release, 0.2)
        with trio.move_on_after(0.05):
            await batcher.submit(7)
        assert finished.is_set()
        batcher.close()


async def _release_after(event: threading.Event, seconds: float) -> None:
    await trio.sleep(seconds)
    event.set()


async def test_close_lets_queued_items_finish():
    after: list[list[int]] = []

    def run_batch(items):
        return [item + 1 for item in items], lambda: after.append(list(items))

    batcher: AcceptBatcher[int, int] = AcceptBatcher(run_batch, lanes=2)
    results = []
    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n in range(10):
                callers.start_soon(lambda n=n: _collect(batcher, n, results))
        batcher.close()
    assert sorted(results) == list(range(1, 11))
    assert sorted(n for batch in after for n in batch) == list(range(10))


async def test_without_run_each_item_is_a_batch_of_its_own():
    sizes = []

    def run_batch(items):
        sizes.append(len(items))
        return [item for item in items], None

    batcher: AcceptBatcher[int, int] = AcceptBatcher(run_batch)
    assert await batcher.submit(3) == 3
    assert sizes == [1]


async def _collect(batcher, n, results):
    results.append(await batcher.submit(n))
