"""A client-side deadline for a connection's use.

``statement_timeout`` runs on the server and TCP keepalives on the network: a
server that is stopped but not dead (SIGSTOP, a frozen VM) behind a Unix
socket trips neither, and a query on it would block its thread until the
server resumes. The watchdog here ends such a use from outside: one thread
per pool keeps the deadlines of the uses that asked for one, and when a
deadline passes it shuts the connection's socket down. The blocked call then
fails at once (libpq sees the connection closed), the pool discards the
connection, and the caller reports a ``timeout``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

log = logging.getLogger("ingest.db")


@dataclass(slots=True)
class Guard:
    """One watched use; ``fired`` once the watchdog has cut its connection."""

    due: float
    conn: psycopg.Connection[Any]
    fired: bool = False


class Watchdog:
    """Deadlines for connection uses, kept by one daemon thread (started on first use)."""

    def __init__(self, name: str = "db-deadline") -> None:
        self._name = name
        self._watched: dict[int, Guard] = {}
        self._tokens = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # when the thread looks next (None: not before told)

    @contextlib.contextmanager
    def guard(self, conn: psycopg.Connection[Any], seconds: float) -> Iterator[Guard]:
        """Watch ``conn`` for ``seconds``; the guard says whether it was cut."""
        watched = Guard(time.monotonic() + seconds, conn)
        token = next(self._tokens)
        with self._changed:
            self._watched[token] = watched
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            # Wake the thread only for a deadline before the one it waits for: uses
            # share one duration, so on a busy pool that is rarely, not every use.
            if self._wakes_at is None or watched.due < self._wakes_at:
                self._changed.notify()
        try:
            yield watched
        finally:
            with self._changed:
                self._watched.pop(token, None)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for token, watched in list(self._watched.items()):
                    if watched.due <= now:
                        # Under the lock: a use that ends meanwhile waits, so a
                        # connection is never cut after it went back to the pool.
                        del self._watched[token]
                        watched.fired = True
                        sever(watched.conn)
                self._wakes_at = min((w.due for w in self._watched.values()), default=None)
                self._changed.wait(
                    None if self._wakes_at is None else max(self._wakes_at - now, 0.001)
                )


def sever(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down (both ways); any call blocked on it
    returns with an error. The descriptor itself stays libpq's to close."""
    try:
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("could not cut an overdue database connection (%s)", type(exc).__name__)
        return
    log.warning("database call overran its deadline; connection cut")
