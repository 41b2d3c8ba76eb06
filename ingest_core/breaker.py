"""A circuit breaker per dependency, so an outage costs a delivery seconds, not minutes.

A dependency that refuses (connection refused, socket missing, name not found)
fails fast on its own. One that stops answering (paused, black-holed) makes
each call wait its full deadline; with a hundred LMTP connections that is a
hundred stuck Postfix deliveries. After ``failures`` consecutive failures that
say the dependency is unreachable (connection errors and missed deadlines, not
a query the database refused) the breaker opens: every call fails at once with
the last cause. After ``reset_s`` it lets one call through as a probe; the
probe's success closes the breaker, its failure opens it for another
``reset_s``. Calls made while the probe is out fail at once.

Thread-safe: the accept path, the milter's recipient checks and the readiness
probes call it from worker threads.
"""

from __future__ import annotations

import enum
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ingest_core.errors import CircuitOpen

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["Breaker", "CircuitOpen", "State"]


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"  # half open, the probe is out


class Breaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("a breaker needs at least one failure to open")
        self.name = name
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._cause = ""
        self._probe: int | None = None  # the thread whose call is the probe

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    @property
    def cause(self) -> str:
        """The last failure's cause ("" while nothing has failed)."""
        with self._lock:
            return self._cause

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go to the dependency now."""
        with self._lock:
            if self._state is State.CLOSED:
                return
            if self._state is State.OPEN and self._clock() - self._opened_at >= self.reset_s:
                self._state = State.PROBING
                self._probe = threading.get_ident()
                return
            raise CircuitOpen(self.name, self._cause)

    def succeeded(self) -> None:
        with self._lock:
            self._consecutive = 0
            if self._state is not State.CLOSED and self._is_probe():
                self._state, self._probe = State.CLOSED, None

    def failed(self, cause: str) -> None:
        """An unreachable-dependency failure (connection error or missed deadline)."""
        with self._lock:
            self._cause = cause
            self._consecutive += 1
            if (self._state is State.PROBING and self._is_probe()) or (
                self._state is State.CLOSED and self._consecutive >= self.failures
            ):
                self._open()

    def released(self) -> None:
        """The call ended with neither verdict (e.g. the database refused the
        data): a probe that ends so gives its turn to the next call."""
        with self._lock:
            if self._state is State.PROBING and self._is_probe():
                self._state, self._probe = State.OPEN, None
                self._opened_at = self._clock() - self.reset_s

    @contextmanager
    def guard(self, classify: Callable[[BaseException], str | None]) -> Iterator[None]:
        """Run the block as one call: ``classify`` names the cause of an
        exception that means "unreachable", or returns None for others."""
        self.before_call()
        try:
            yield
        except BaseException as exc:
            cause = classify(exc)
            if cause is None:
                self.released()
            else:
                self.failed(cause)
            raise
        self.succeeded()

    def _open(self) -> None:
        self._state = State.OPEN
        self._opened_at = self._clock()
        self._probe = None

    def _is_probe(self) -> bool:
        return self._probe == threading.get_ident()
