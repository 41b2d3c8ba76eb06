"""Batches of messages for the core: one thread hop per batch, not per message.

The core is synchronous and runs in worker threads. Handing each message to a
thread of its own costs more than the work: a hundred connections make a
hundred threads fight for the GIL, and every hand-off is a futex round trip.
Here each session hands its finished message to an ``AcceptBatcher`` and waits;
a few lanes take everything that is waiting (up to ``max_batch``), make one
``accept_many`` call in a worker thread, and wake each session with its own
result. Under light load a batch is one message and nothing waits for company;
under load batches grow by themselves while the previous one is in the thread.

The wait is shielded from cancellation, as ``trio.to_thread.run_sync`` is: the
thread may be reading the session's spool, so the session must not discard it
before the batch is done.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger("ingest.lmtp")

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    done: trio.Event = field(default_factory=trio.Event)
    result: R | None = None
    error: BaseException | None = None


Batch = tuple["Sequence[R]", "Callable[[], None] | None"]


class AcceptBatcher(Generic[T, R]):
    """``await submit(item)`` returns ``run_batch([... item ...])``'s result for it.

    ``run_batch`` returns the results and, optionally, work to run in a worker
    thread after the callers were woken (enqueueing extraction jobs: the
    replies need not wait for it). Outside :meth:`run` (a connection handled
    without a server), each item is a batch of its own."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], Batch[R]],
        *,
        max_batch: int = 64,
        lanes: int = 2,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.lanes = lanes
        self._limiter = limiter or trio.CapacityLimiter(lanes)
        self._send, self._receive = trio.open_memory_channel[_Pending[T, R]](max_batch * 64)
        # Work after a batch (enqueueing its jobs) runs on a thread of its own, so
        # it never holds a lane that the next batch's replies wait for.
        self._after_send, self._after_receive = trio.open_memory_channel[Callable[[], None]](
            math.inf
        )
        self._after_limiter = trio.CapacityLimiter(1)
        self.batches = 0
        self.items = 0
        self._running = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve batches until :meth:`close`; returns once every submitted item is done."""
        async with trio.open_nursery() as outer:
            outer.start_soon(self._follow_ups)
            async with trio.open_nursery() as lanes:
                for _ in range(self.lanes):
                    lanes.start_soon(self._lane, self._receive.clone())
                await self._receive.aclose()
                self._running = True
                task_status.started()
            self._running = False
            self._after_send.close()

    def close(self) -> None:
        """No more items; :meth:`run` returns once the queued ones are done."""
        self._send.close()

    async def submit(self, item: T) -> R:
        pending: _Pending[T, R] = _Pending(item)
        with trio.CancelScope(shield=True):
            if self._running:
                await self._send.send(pending)
                await pending.done.wait()
            else:
                await self._execute([pending])
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def _lane(self, receive: trio.MemoryReceiveChannel[_Pending[T, R]]) -> None:
        async with receive:
            async for first in receive:
                await self._execute(_with_waiting(first, receive, self.max_batch))

    async def _execute(self, batch: list[_Pending[T, R]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results, then = await trio.to_thread.run_sync(
                self._run_batch, [p.item for p in batch], limiter=self._limiter
            )
            if len(results) != len(batch):
                raise RuntimeError("a batch returned a different number of results")
        except Exception as exc:
            log.exception("batch failed", extra={"batch": len(batch)})
            for pending in batch:
                pending.error = exc
                pending.done.set()
            return
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.set()
        if then is None:
            return
        if self._running:
            self._after_send.send_nowait(then)
        else:
            await trio.to_thread.run_sync(_run_all, [then], limiter=self._after_limiter)

    async def _follow_ups(self) -> None:
        """Everything queued after batches, in one worker-thread call at a time."""
        async with self._after_receive:
            async for first in self._after_receive:
                work = _with_waiting(first, self._after_receive, math.inf)
                await trio.to_thread.run_sync(_run_all, work, limiter=self._after_limiter)


def _with_waiting(first: V, receive: trio.MemoryReceiveChannel[V], limit: float) -> list[V]:
    """``first`` and whatever else is already waiting in ``receive``, up to ``limit``."""
    items = [first]
    while len(items) < limit:
        try:
            items.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return items


def _run_all(work: Sequence[Callable[[], None]]) -> None:
    for step in work:
        try:
            step()
        except Exception:
            log.exception("work after a batch failed")
