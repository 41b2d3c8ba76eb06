"""Postgres plumbing shared by the adapters: connection deadlines, the pool, and
the one place where psycopg's exceptions become the core's.

A worker thread cannot be cancelled, so every way it can block carries its own
deadline, all derived from ``Settings.store_timeout_s``:

- waiting for a pooled connection: the pool's ``timeout``;
- opening a connection: libpq ``connect_timeout``;
- a query the server is slow to run: ``statement_timeout`` (server side);
- a server or network that silently disappears mid-query: TCP keepalives and
  ``tcp_user_timeout`` (client side; ignored on Unix sockets, where the kernel
  reports a dead peer at once).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest_core.errors import IngestError, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

Pool = ConnectionPool[psycopg.Connection[Any]]

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
    }


def open_pool(
    conninfo: str,
    *,
    timeout_s: float,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "ingest",
) -> Pool:
    """A started connection pool. Does not wait for the database: while it is
    unreachable, each call fails after ``timeout_s`` and the pool keeps trying.

    ``check`` validates a connection on checkout, so a server restart costs no
    failed call once the server is back. The caller closes the pool.
    """
    pool: Pool = ConnectionPool(
        conninfo,
        kwargs=connection_options(timeout_s, conninfo),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
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
def database_errors(operation: str, error: type[IngestError] = StoreUnavailable) -> Iterator[None]:
    """Turn any psycopg or pool error raised inside the block into ``error``.

    Every psycopg error counts as "unavailable": for the accept path that means
    a temporary 451 and a retry by Postfix, which never loses mail.
    """
    try:
        yield
    except PoolTimeout as exc:
        raise error(f"database {operation}: no connection within the pool timeout") from exc
    except psycopg.Error as exc:
        raise error(f"database {operation} failed ({describe(exc)})") from exc


def clean_text(text: str | None) -> str | None:
    """Make sender-controlled text storable: Postgres text holds neither NUL nor
    lone surrogates (which ``surrogateescape`` decoding can produce). Both become
    U+FFFD instead of turning a message into a permanent database error."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "\ufffd")
