"""The job queue unavailable at accept time: Redis not running, or the SQLite
queue file locked by another process.

The row is committed before the enqueue, so the client still gets its 250 and
the message stays RECEIVED. Once the queue is back, `ingest sweep` enqueues
every such message and a worker processes each one exactly once.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.queue import huey_from_url
from tests.chaos.audit import ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import Delivery, deliver_once, make_message
from tests.procs import (
    IngestServer,
    IngestWorker,
    RedisServer,
    free_port,
    ingest_env,
    redis_binary,
    run_ingest,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.chaos.audit import RecordScenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

MESSAGES = 6


def deliver_while_queue_is_down(port: int, tag: str) -> list[Delivery]:
    deliveries = [Delivery(n, *make_message(tag, n, 6000)) for n in range(MESSAGES)]
    for delivery in deliveries:
        attempt = deliver_once(port, delivery)
        assert attempt.code == 250, attempt
        assert attempt.text.endswith("accepted")
    return deliveries


def statuses(database_url: str) -> list[str]:
    return sorted(row.status for row in fetch_rows(database_url))


def sweep_and_process(
    env: dict[str, str], data_dir: Path, database_url: str, pending: Callable[[], int]
) -> None:
    """`ingest sweep` enqueues every stranded message once; a worker does the rest."""
    assert pending() == 0
    done = run_ingest(env, "sweep")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"re-enqueued {MESSAGES} message(s)"
    assert pending() == MESSAGES
    worker = IngestWorker(env, data_dir / "worker.log")
    worker.start()
    try:
        wait_for(
            lambda: (
                worker.check_alive("ingest worker")
                and statuses(database_url) == ["PROCESSED"] * MESSAGES
            ),
            "the worker to process the swept messages",
        )
    finally:
        worker.stop()
    assert {row.attempts for row in fetch_rows(database_url)} == {1}


def test_redis_down_at_accept_then_swept(
    acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed")
    port = free_port()  # nothing listens here yet
    queue_url = f"redis://127.0.0.1:{port}/0"
    env = ingest_env(data_dir, acme_db, INGEST_QUEUE_URL=queue_url, INGEST_SWEEP_AGE_S="0.001")
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    try:
        deliveries = deliver_while_queue_is_down(server.port, "redis-down")
    finally:
        server.stop()
    assert statuses(acme_db) == ["RECEIVED"] * MESSAGES

    redis = RedisServer(data_dir / "redis.log", data_dir, port)
    redis.start()
    try:
        huey = huey_from_url(queue_url, data_dir / "unused.db")
        sweep_and_process(env, data_dir, acme_db, huey.pending_count)
    finally:
        redis.stop()
    result = audit(deliveries, fetch_rows(acme_db), local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    note = f"{MESSAGES} accepted with Redis down; swept and processed once each"
    record_scenario(ScenarioResult.of("Redis queue down at accept", result, note))


def test_sqlite_queue_locked_at_accept_then_swept(
    acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    env = ingest_env(
        data_dir, acme_db, INGEST_STORE_TIMEOUT_S="1", INGEST_SWEEP_AGE_S="0.001"
    )  # the SQLite busy wait is the store timeout
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    blocker = sqlite3.connect(data_dir / "queue.db", isolation_level=None, timeout=10)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        deliveries = deliver_while_queue_is_down(server.port, "sqlite-locked")
    finally:
        # Jobs are enqueued after the replies: stopping the server first lets its
        # last enqueues give up while the file is still locked.
        server.stop()
        blocker.close()  # rolls the exclusive transaction back
    assert statuses(acme_db) == ["RECEIVED"] * MESSAGES

    huey = huey_from_url(None, data_dir / "queue.db")
    sweep_and_process(env, data_dir, acme_db, huey.pending_count)
    result = audit(deliveries, fetch_rows(acme_db), local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    note = f"{MESSAGES} accepted with the queue file locked; swept and processed once each"
    record_scenario(ScenarioResult.of("SQLite queue locked at accept", result, note))
