"""A ``BlobStore`` behind a circuit breaker (the database's breaker lives in its pool).

Every call is one breaker call: an unreachable store (the adapter's
``StoreUnavailable.cause`` says so) counts as a failure, an answer of any kind
(a missing object included) as a success; while the breaker is open a call
fails at once with the last cause. In a batch of puts each object is a call;
one that succeeded shows the store reachable, and then none counts as failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ingest_core.breaker import Breaker, CircuitOpen
from ingest_core.errors import ObjectNotFound, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ingest_core.ports import BlobStore
    from ingest_core.spool import Spool

T = TypeVar("T")


class GuardedBlobStore:
    def __init__(self, store: BlobStore, breaker: Breaker) -> None:
        self.inner = store
        self.breaker = breaker

    def put(self, key: str, spool: Spool) -> None:
        self._call(self.inner.put, key, spool)

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        self._call(self.inner.put_file, key, source, size)

    def open(self, key: str) -> BinaryIO:
        return self._call(self.inner.open, key)

    def exists(self, key: str) -> bool:
        return self._call(self.inner.exists, key)

    def delete(self, key: str) -> None:
        self._call(self.inner.delete, key)

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """The listing's first page is the breaker call; the later pages of a
        long listing are read outside it."""
        listing = self.inner.list_keys(prefix)
        first = self._call(next, listing, None)
        if first is None:
            return
        yield first
        yield from listing

    def ping(self) -> None:
        self._call(self.inner.ping)

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            return [_open_error(exc)] * len(items)
        try:
            errors = self.inner.put_many(items)
        except BaseException:
            self.breaker.released()
            raise
        failed = [error for error in errors if error is not None]
        if len(failed) < len(errors):
            self.breaker.succeeded()
        elif failed and all(error.unreachable for error in failed):
            for error in failed:  # each object was a call that failed
                self.breaker.failed(error.cause)
        else:
            self.breaker.released()
        return errors

    def __getattr__(self, name: str) -> Any:
        """The adapter's own extras (``remove_stale_temp_files``, ``root`` …)."""
        return getattr(self.inner, name)

    def _call(self, call: Callable[..., T], *args: Any) -> T:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise _open_error(exc) from exc
        try:
            result = call(*args)
        except ObjectNotFound:
            self.breaker.succeeded()  # the store answered
            raise
        except StoreUnavailable as exc:
            if exc.unreachable:
                self.breaker.failed(exc.cause)
            else:
                self.breaker.released()
            raise
        except BaseException:
            self.breaker.released()
            raise
        self.breaker.succeeded()
        return result


def _open_error(exc: CircuitOpen) -> StoreUnavailable:
    return StoreUnavailable(str(exc), cause=exc.cause)
