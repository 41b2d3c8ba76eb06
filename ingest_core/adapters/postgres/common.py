"""Postgres plumbing shared by the adapters: connection deadlines, the pool, and
the one place where psycopg's exceptions become the core's.

A worker thread cannot be cancelled, so every way it can block carries its own
deadline, all derived from ``Settings.store_timeout_s``:

- waiting for a pooled connection: the pool's ``timeout``;
- opening a connection: libpq ``connect_timeout``;
- a query the server is slow to run: ``statement_timeout`` (server side);
- a server or network that silently disappears mid-query: TCP keepalives and
  ``tcp_user_timeout`` (client side; ignored on Unix sockets, where the kernel
  reports a dead peer at once);
- a server that stops answering but stays alive (paused) on a Unix socket:
  the pool's watchdog (``deadline.py``) cuts a use that asked for a deadline,
  and the check of a connection taken from the pool, after ``timeout_s``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest_core.adapters.postgres.deadline import Watchdog
from ingest_core.breaker import CircuitOpen
from ingest_core.errors import StoreUnavailable, Unavailable
from ingest_core.text import storable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ingest_core.breaker import Breaker

# What a failed connection attempt says, and the cause we report for it.
_CONNECT_CAUSES = (
    ("connection refused", "connection refused"),
    ("no such file or directory", "no such file"),
    ("could not translate host name", "name not found"),
    ("name or service not known", "name not found"),
    ("temporary failure in name resolution", "name not found"),
    ("timeout expired", "timeout"),
    ("timed out", "timeout"),
)
# How long a failed connection attempt stands for the database's state: while
# the pool has no connection and the last attempt failed this recently, a call
# tries one connection of its own before it waits for the pool.
_RECENT_S = 5.0


class PoolUnreachable(PoolTimeout):
    """The pool has no connection at all, and its attempts fail: ``cause`` says how."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"no connection to the database ({cause})")
        self.cause = cause


def unreachable_cause(exc: BaseException) -> str | None:
    """The cause phrase of an error that says the database cannot be reached
    (a connection that failed or broke, a missed deadline), else None (a query
    the database refused says nothing about reachability)."""
    if isinstance(exc, PoolUnreachable):
        return exc.cause
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "timeout"  # statement_timeout
    if not isinstance(exc, psycopg.OperationalError):
        return None
    sqlstate = exc.sqlstate or ""
    if sqlstate and not sqlstate.startswith(("08", "57P")):
        return None  # e.g. a serialisation failure: the server answered
    text = str(exc).lower()
    for needle, cause in _CONNECT_CAUSES:
        if needle in text:
            return cause
    return "connection lost"


class Pool(ConnectionPool[psycopg.Connection[Any]]):
    """psycopg's pool, with the database's reachability tracked for a breaker.

    Connection attempts (made by the pool's own workers) record their last
    failure. A call made while the pool holds no connection and that failure is
    recent first tries a connection of its own: if that fails too, the call
    fails at once with its cause (a database that refuses costs a call
    milliseconds, not the pool's wait, which its reconnect backoff would make
    longer still); if it works, the database is back and the call waits for the
    pool as usual. With a ``breaker``, every call counts:
    unreachable-database failures open it, and while it is open calls fail at
    once (``CircuitOpen``)."""

    def __init__(
        self,
        conninfo: str,
        *,
        breaker: Breaker | None = None,
        patience_s: float | None = None,
        use_deadline_s: float | None = None,
        **options: Any,
    ) -> None:
        self.breaker = breaker
        # The client-side deadline of a use that asks for one (``deadline=True``)
        # and of the check of a connection taken from the pool.
        self._use_deadline_s = use_deadline_s
        self._watchdog = Watchdog()
        if use_deadline_s is not None and options.get("check") is not None:
            options["check"] = self._guarded_check(options["check"], use_deadline_s)
        # How long a call may wait for a connection while nothing says the
        # database is unreachable (the pool busy, or still connecting on a slow
        # machine); the pool's own ``timeout`` is how often that is asked.
        self._patience_s = patience_s
        self._probe_args = (conninfo, dict(options.get("kwargs") or {}))
        self._failure: tuple[float, str] | None = None
        self._failure_lock = threading.Lock()
        super().__init__(conninfo, connection_class=_recording(self), **options)

    def record_connect_failure(self, exc: BaseException) -> None:
        cause = unreachable_cause(exc) or "connection lost"
        with self._failure_lock:
            self._failure = (time.monotonic(), cause)

    def record_connect_success(self) -> None:
        with self._failure_lock:
            self._failure = None

    def known_unreachable(self) -> str | None:
        """The cause, if the pool has nothing to give and its last attempt failed recently."""
        with self._failure_lock:
            failure = self._failure
        if failure is None or time.monotonic() - failure[0] > _RECENT_S:
            return None
        stats = self.get_stats()
        return failure[1] if stats.get("pool_available", 0) == 0 else None

    @contextmanager
    def connection(
        self, timeout: float | None = None, *, deadline: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection. With ``deadline``, a use that outlasts the pool's
        ``use_deadline_s`` has its connection cut and fails as a ``timeout``
        (for the calls a delivery waits on: a stopped server must not hold
        them for ever)."""
        if self.breaker is not None:
            self.breaker.before_call()
        try:
            if self.known_unreachable() is not None:
                self._probe()
            with contextlib.ExitStack() as stack:
                conn = self._acquire(stack, timeout)
                if not deadline or self._use_deadline_s is None:
                    yield conn
                else:
                    with self._watchdog.guard(conn, self._use_deadline_s) as guard:
                        try:
                            yield conn
                        except psycopg.Error as exc:
                            if guard.fired:
                                raise PoolUnreachable("timeout") from exc
                            raise
        except BaseException as exc:
            self._count(exc)
            raise
        if self.breaker is not None:
            self.breaker.succeeded()

    def _guarded_check(
        self, check: Callable[[psycopg.Connection[Any]], None], seconds: float
    ) -> Callable[[psycopg.Connection[Any]], None]:
        """The pool's check of a connection it hands out, within ``seconds``."""

        def guarded(conn: psycopg.Connection[Any]) -> None:
            with self._watchdog.guard(conn, seconds):
                check(conn)

        return guarded

    def _acquire(
        self, stack: contextlib.ExitStack, timeout: float | None
    ) -> psycopg.Connection[Any]:
        """A pooled connection, entered on ``stack``. Waits in steps of the
        pool's timeout: after each, a recorded connection failure ends the wait
        with its cause; without one it waits on, up to ``patience_s``."""
        step = timeout if timeout is not None else self.timeout
        patience = max(self._patience_s or step, step)
        started = time.monotonic()
        while True:
            try:
                return stack.enter_context(super().connection(step))
            except PoolTimeout as exc:
                cause = self.known_unreachable()
                if cause is not None:
                    raise PoolUnreachable(cause) from exc
                left = patience - (time.monotonic() - started)
                if left > 0:
                    step = min(step, left)
                    continue
                if self.get_stats().get("pool_size", 0) == 0:
                    raise PoolUnreachable("timeout") from exc  # not one connection
                raise  # every connection busy: the database answers, we are saturated

    def _probe(self) -> None:
        """One connection attempt of our own; raises PoolUnreachable if it fails."""
        try:
            conninfo, kwargs = self._probe_args
            self.connection_class.connect(conninfo, **kwargs).close()
        except psycopg.Error as exc:
            raise PoolUnreachable(unreachable_cause(exc) or "connection lost") from exc

    def _count(self, exc: BaseException) -> None:
        if self.breaker is None:
            return
        cause = unreachable_cause(exc)
        if cause is None:
            self.breaker.released()
        else:
            self.breaker.failed(cause)


def _recording(pool: Pool) -> type[psycopg.Connection[Any]]:
    """A connection class whose ``connect`` tells ``pool`` how each attempt went."""

    class RecordingConnection(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = super().connect(*args, **kwargs)
            except psycopg.Error as exc:
                pool.record_connect_failure(exc)
                raise
            pool.record_connect_success()
            return conn

    return RecordingConnection


APPLICATION_NAME = "order-ingest"


def connection_options(timeout_s: float, conninfo: str = "") -> dict[str, Any]:
    """libpq parameters that bound every blocking step of one connection.

    ``options`` already present in ``conninfo`` are kept; ours are appended.
    """
    budget = max(float(timeout_s), 1.0)
    server_options = (
        f"-c statement_timeout={int(budget * 1000)}"
        f" -c idle_in_transaction_session_timeout={int(budget * 2000)}"
    )
    existing = conninfo_to_dict(conninfo).get("options") if conninfo else None
    return {
        # libpq treats anything below 2 s as 2 s.
        "connect_timeout": max(2, math.ceil(budget / 4)),
        "options": f"{existing} {server_options}" if existing else server_options,
        # A silent peer is declared dead after idle + interval * count.
        "keepalives": 1,
        "keepalives_idle": max(1, int(budget / 4)),
        "keepalives_interval": max(1, int(budget / 12)),
        "keepalives_count": 3,
        # Unacknowledged data (a query sent to a vanished host) gives up after this.
        "tcp_user_timeout": max(1000, int(budget * 500)),
        "application_name": APPLICATION_NAME,
        # Text as str whatever the database's encoding: a SQL_ASCII database (what
        # initdb makes in a C locale) would otherwise hand every text value back
        # as bytes.
        "client_encoding": "UTF8",
    }


def open_pool(
    conninfo: str,
    *,
    timeout_s: float,
    acquire_timeout_s: float | None = None,
    breaker: Breaker | None = None,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "ingest",
) -> Pool:
    """A started connection pool. Does not wait for the database: while it is
    unreachable, each call fails after ``acquire_timeout_s`` (default
    ``timeout_s``), at once after the pool's own attempt failed, and the pool
    keeps trying.

    ``check`` validates a connection on checkout, so a server restart costs no
    failed call once the server is back. The caller closes the pool.
    """
    pool = Pool(
        conninfo,
        breaker=breaker,
        patience_s=timeout_s,
        use_deadline_s=timeout_s,
        kwargs=connection_options(timeout_s, conninfo),
        min_size=min_size,
        max_size=max_size,
        timeout=acquire_timeout_s if acquire_timeout_s is not None else timeout_s,
        reconnect_timeout=max(timeout_s, 60.0),
        check=ConnectionPool.check_connection,
        name=name,
        open=False,
    )
    pool.open(wait=False)
    return pool


def connect(
    conninfo: str, *, timeout_s: float, autocommit: bool = False
) -> psycopg.Connection[Any]:
    """One connection outside any pool (migrations, administration)."""
    return psycopg.connect(
        conninfo, autocommit=autocommit, **connection_options(timeout_s, conninfo)
    )


def describe(exc: BaseException) -> str:
    """A short, body-free description of a database error for logs and messages."""
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__}, SQLSTATE {sqlstate}" if sqlstate else type(exc).__name__


@contextmanager
def database_errors(operation: str, error: type[Unavailable] = StoreUnavailable) -> Iterator[None]:
    """Turn any psycopg or pool error raised inside the block into ``error``.

    Every psycopg error counts as "unavailable": for the accept path that means
    a temporary 451 and a retry by Postfix, which never loses mail.
    """
    try:
        yield
    except CircuitOpen as exc:
        raise error(f"database {operation}: {exc}", cause=exc.cause) from exc
    except PoolUnreachable as exc:
        raise error(f"database {operation}: {exc}", cause=exc.cause) from exc
    except PoolTimeout as exc:
        raise error(f"database {operation}: no connection within the pool timeout") from exc
    except psycopg.Error as exc:
        cause = unreachable_cause(exc) or "unavailable"
        raise error(f"database {operation} failed ({describe(exc)})", cause=cause) from exc


clean_text = storable  # what every adapter calls before it writes sender text
