"""One JobQueue contract for the fake, SqliteHuey and RedisHuey (if redis-server
is installed), plus huey_from_url."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from huey import RedisHuey, SqliteHuey

from ingest_core.adapters.memory import MemoryJobQueue
from ingest_core.adapters.queue import HueyJobQueue, huey_from_url
from ingest_core.errors import ConfigError, QueueUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ingest_core.ports import JobQueue


@dataclass
class Harness:
    queue: JobQueue
    run_pending: Callable[[], list[str]]  # runs queued jobs; the ids the task saw


def huey_harness(huey: Any) -> Harness:
    seen: list[str] = []

    @huey.task(name="ingest.extract")
    def extract(message_id: str) -> None:  # a stand-in for ingest_core.tasks
        seen.append(message_id)

    def run_pending() -> list[str]:
        while (task := huey.dequeue()) is not None:
            assert task.name == "ingest.extract"
            huey.execute(task)
        return list(seen)

    return Harness(HueyJobQueue(huey, extract), run_pending)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "memory":
        fake = MemoryJobQueue()
        return Harness(fake, lambda: [str(job) for job in fake.jobs])
    if request.param == "sqlite":
        return huey_harness(huey_from_url(None, tmp_path / "queue.db", results=False))
    url = request.getfixturevalue("redis_url")
    return huey_harness(huey_from_url(url, tmp_path / "unused.db", results=False))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def broken_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    if request.param == "memory":
        fake = MemoryJobQueue()
        fake.failing = True
        yield fake
    elif request.param == "sqlite":
        path = tmp_path / "queue.db"
        queue = huey_harness(huey_from_url(f"sqlite:///{path}", tmp_path, timeout_s=0.05)).queue
        # Another process holding the write lock: huey's busy wait runs out.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        yield queue
        blocker.close()
    else:
        port = request.getfixturevalue("closed_port")
        yield huey_harness(
            huey_from_url(f"redis://127.0.0.1:{port}/0", tmp_path, timeout_s=1.0)
        ).queue


def test_enqueued_ids_reach_the_task_in_order(harness: Harness) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    for message_id in ids:
        harness.queue.enqueue_extraction(message_id)
    assert harness.run_pending() == [str(i) for i in ids]


def test_a_batch_of_jobs_reaches_the_task_in_order(harness: Harness) -> None:
    first = uuid.uuid4()
    harness.queue.enqueue_extraction(first)
    batch = [uuid.uuid4() for _ in range(5)]
    harness.queue.enqueue_extractions([(message_id, None) for message_id in batch])
    harness.queue.enqueue_extractions([])
    assert harness.run_pending() == [str(i) for i in [first, *batch]]


def test_a_batch_to_an_unreachable_queue_raises_queue_unavailable(
    broken_queue: JobQueue,
) -> None:
    with pytest.raises(QueueUnavailable):
        broken_queue.enqueue_extractions([(uuid.uuid4(), None), (uuid.uuid4(), None)])


def test_a_batch_carries_each_job_s_traceparent(tmp_path: Path) -> None:
    huey = huey_from_url(None, tmp_path / "queue.db", results=False)
    seen: list[tuple[str, str | None]] = []

    @huey.task(name="ingest.extract")
    def extract(message_id: str, traceparent: str | None = None) -> None:
        seen.append((message_id, traceparent))

    jobs = [(uuid.uuid4(), f"00-{n:032x}-{n:016x}-01") for n in range(1, 4)]
    HueyJobQueue(huey, extract).enqueue_extractions([*jobs, (uuid.uuid4(), None)])
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    assert seen[:3] == [(str(message_id), parent) for message_id, parent in jobs]
    assert seen[3][1] is None


def test_enqueueing_twice_runs_twice(harness: Harness) -> None:
    """The queue does not deduplicate; the task's claim makes a rerun harmless."""
    message_id = uuid.uuid4()
    harness.queue.enqueue_extraction(message_id)
    harness.queue.enqueue_extraction(message_id)
    assert harness.run_pending() == [str(message_id)] * 2


def test_unreachable_queue_raises_queue_unavailable(broken_queue: JobQueue) -> None:
    with pytest.raises(QueueUnavailable):
        broken_queue.enqueue_extraction(uuid.uuid4())


def test_jobs_survive_a_new_huey_instance(tmp_path: Path) -> None:
    """The SQLite queue is a file: a worker started later finds the job."""
    producer = huey_harness(huey_from_url(None, tmp_path / "q.db", results=False))
    message_id = uuid.uuid4()
    producer.queue.enqueue_extraction(message_id)
    consumer = huey_harness(huey_from_url(None, tmp_path / "q.db", results=False))
    assert consumer.run_pending() == [str(message_id)]


def test_huey_from_url_kinds(tmp_path: Path) -> None:
    default = huey_from_url(None, tmp_path / "sub" / "queue.db")
    assert isinstance(default, SqliteHuey)
    assert (tmp_path / "sub" / "queue.db").exists()
    explicit = huey_from_url(f"sqlite:///{tmp_path}/other.db", tmp_path / "x.db")
    assert isinstance(explicit, SqliteHuey)
    assert explicit.storage.filename == f"{tmp_path}/other.db"
    redis_huey = huey_from_url("redis://127.0.0.1:1/3", tmp_path / "x.db")  # nothing connects
    assert isinstance(redis_huey, RedisHuey)
    assert redis_huey.storage.pool.connection_kwargs["db"] == 3


@pytest.mark.parametrize(
    "url", ["sqlite://relative.db", "sqlite:///relative.db", "amqp://broker", "queue.db"]
)
def test_huey_from_url_refuses(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        huey_from_url(url, tmp_path / "queue.db")


def test_an_impossible_sqlite_path_is_queue_unavailable(tmp_path) -> None:
    from ingest_core.adapters.queue import huey_from_url
    from ingest_core.errors import QueueUnavailable

    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(QueueUnavailable):
        huey_from_url(None, blocker / "sub" / "queue.db")
