"""Group commit: concurrent callers share one transaction (docs/contracts.md, Durable accept).

Each accept runs in its own worker thread and would otherwise pay for its own
commit (a WAL flush) on its own pooled connection. Here the first caller to
arrive while no batch is in flight becomes the leader: it takes everything
queued (itself included, up to ``max_batch``), commits it as one batch, hands
each caller its own result, and wakes the rest. Callers that arrived meanwhile
form the next batch. Under light load a batch is one item and nothing waits;
under heavy load batches grow by themselves. No caller returns before the batch
holding its item has committed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Generic, TypeVar

from ingest_core.errors import RecordRejected

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    def __init__(self, commit: Callable[[Sequence[T]], list[R]], *, max_batch: int = 64) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False
        self.batches = 0  # for tests and metrics
        self.largest_batch = 0

    def submit(self, item: T) -> R:
        """Commit ``item`` (with whatever else is queued); its result, or its error."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while self._busy and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                self._busy = True
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        try:
            try:
                results = self._commit([slot.item for slot in batch])
            except RecordRejected:
                if len(batch) == 1:
                    raise
                for slot in batch:
                    self._run_alone(slot)
                return
            if len(results) != len(batch):
                raise RuntimeError("group commit: one result per item expected")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:  # every waiter must learn the outcome
            for slot in batch:
                if not slot.done:
                    slot.error = exc
        finally:
            for slot in batch:
                slot.done = True

    def _run_alone(self, slot: _Slot[T, R]) -> None:
        try:
            [slot.result] = self._commit([slot.item])
        except BaseException as exc:
            slot.error = exc
        finally:
            slot.done = True
