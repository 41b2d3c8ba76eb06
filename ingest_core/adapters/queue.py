"""``JobQueue`` on huey: a SQLite file by default, Redis when configured.

Jobs carry a message id and nothing else; the task itself (``ingest.extract``)
is defined in ``ingest_core.worker.tasks`` and handed to ``HueyJobQueue``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from huey import RedisHuey, SqliteHuey
from huey.exceptions import HueyException
from huey.storage import SqliteStorage

from ingest_core.errors import ConfigError, QueueUnavailable
from ingest_core.telemetry import current_traceparent

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

DEFAULT_NAME = "ingest"


def huey_from_url(
    url: str | None,
    default_path: Path,
    *,
    name: str = DEFAULT_NAME,
    timeout_s: float = 60.0,
    **options: Any,
) -> Any:
    """A huey instance: ``None`` → SQLite at ``default_path``;
    ``sqlite:////abs/queue.db``; ``redis://host:port/db`` (or ``rediss://``).

    ``timeout_s`` bounds SQLite's wait for a busy database and each Redis socket
    operation. ``options`` go to huey (e.g. ``results=False``, ``immediate=True``).
    """
    if url is None:
        return _sqlite(default_path, name, timeout_s, options)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path → path "//abs/path"; one leading slash is the separator.
        path = parts.path[1:] if parts.path.startswith("//") else ""
        if parts.netloc or not path.startswith("/"):
            raise ConfigError(f"queue URL must be sqlite:////absolute/path.db, not {url!r}")
        return _sqlite(Path(path), name, timeout_s, options)
    if parts.scheme in ("redis", "rediss", "unix"):
        pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=max(timeout_s, 5.0),
            socket_connect_timeout=min(timeout_s, 5.0),
            health_check_interval=30,
        )
        return RedisHuey(name, connection_pool=pool, **options)
    raise ConfigError(f"unsupported queue URL {url!r}: use sqlite:////… or redis://…")


class _NormalSyncStorage(SqliteStorage):  # type: ignore[misc]
    """WAL with ``synchronous=NORMAL``: a commit is not synced, and the file
    cannot be corrupted by a power cut (``OFF``, huey's ``fsync=False``, could).
    The job is not what keeps a message safe: its RECEIVED row is, committed
    before the 250, and the sweeper re-enqueues a row whose job a crash lost
    (after ``INGEST_SWEEP_AGE_S``). docs/throughput.md, "What the queue skips"."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn

    def enqueue_many(self, items: Sequence[tuple[bytes, int | None]]) -> None:
        """Several jobs (serialised task, priority) in one transaction, as
        ``enqueue`` writes one."""
        rows = [(self.name, self.to_blob(data), priority or 0) for data, priority in items]
        with self.db(commit=True) as cursor:
            cursor.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)


class _QueueHuey(SqliteHuey):  # type: ignore[misc]
    storage_class = _NormalSyncStorage


def _sqlite(path: Path, name: str, timeout_s: float, options: dict[str, Any]) -> Any:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _QueueHuey(name, filename=str(path), timeout=timeout_s, **options)
    except (sqlite3.Error, OSError) as exc:
        raise QueueUnavailable(f"cannot open queue database {path} ({type(exc).__name__})") from exc


def pending_jobs(huey: Any) -> int:
    """Jobs waiting in the queue (SQLite ``COUNT``, Redis ``LLEN``): a cheap read
    that also proves the queue reachable. Raises QueueUnavailable."""
    try:
        return int(huey.pending_count())
    except (sqlite3.Error, redis.RedisError, HueyException, OSError) as exc:
        raise QueueUnavailable(
            f"queue: counting pending jobs failed ({type(exc).__name__})"
        ) from exc


class HueyJobQueue:
    """``JobQueue``: calls the extraction task with the message id as a string, and
    the current trace context (W3C traceparent) when there is one, so that the
    extraction span can link to the accept span."""

    def __init__(self, huey: Any, task: Any = None) -> None:
        self.huey = huey
        self._task = task

    def use_task(self, task: Any) -> None:
        """The extraction task, once registered (the tasks' bodies use this queue
        too, so the two are built one after the other)."""
        self._task = task

    def enqueue_extraction(self, message_id: uuid.UUID) -> None:
        try:
            self.huey.enqueue(self._job(message_id, current_traceparent()))
        except (sqlite3.Error, redis.RedisError, HueyException, OSError) as exc:
            raise QueueUnavailable(
                f"could not enqueue extraction of {message_id} ({type(exc).__name__})"
            ) from exc

    def _job(self, message_id: uuid.UUID, traceparent: str | None) -> Any:
        """The extraction task for ``message_id``, carrying the trace context if any."""
        if traceparent:
            return self._task.s(str(message_id), traceparent=traceparent)
        return self._task.s(str(message_id))

    def enqueue_extractions(self, jobs: Sequence[tuple[uuid.UUID, str | None]]) -> None:
        """The SQLite queue takes them in one transaction (one lock, one commit,
        not one each); others one by one."""
        tasks = [self._job(message_id, traceparent) for message_id, traceparent in jobs]
        try:
            storage = self.huey.storage
            if isinstance(storage, _NormalSyncStorage):
                storage.enqueue_many([(self.huey.serialize_task(t), t.priority) for t in tasks])
            else:
                for task in tasks:
                    self.huey.enqueue(task)
        except (sqlite3.Error, redis.RedisError, HueyException, OSError) as exc:
            raise QueueUnavailable(
                f"could not enqueue {len(tasks)} extractions ({type(exc).__name__})"
            ) from exc
