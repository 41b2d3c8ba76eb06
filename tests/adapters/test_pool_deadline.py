"""The pool's client-side deadline: a use that asked for one and outlasts it has
its connection cut and fails as a timeout, on a live server (``pg_sleep``
stands in for a server that stopped answering); the pool recovers at once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.postgres.common import database_errors, open_pool
from ingest_core.breaker import Breaker
from ingest_core.errors import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest_core.adapters.postgres.common import Pool


@pytest.fixture
def pool(pg_url: str) -> Iterator[Pool]:
    # statement_timeout is this timeout too: above the sleeps, so only the watchdog ends them
    opened = open_pool(pg_url, timeout_s=1.0, breaker=Breaker("postgres", failures=2, reset_s=60))
    try:
        yield opened
    finally:
        opened.close()


def _sleep(pool: Pool, seconds: float, *, deadline: bool) -> None:
    with database_errors("sleep"), pool.connection(deadline=deadline) as conn:
        conn.execute("SET statement_timeout = '30s'")
        conn.execute("SELECT pg_sleep(%s)", (seconds,))


def test_a_use_past_its_deadline_is_cut_and_reported_as_a_timeout(pool: Pool) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        _sleep(pool, 20, deadline=True)
    assert time.monotonic() - started < 5
    assert raised.value.cause == "timeout"
    with pool.connection(deadline=True) as conn:  # the cut connection was discarded
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_use_within_its_deadline_is_left_alone(pool: Pool) -> None:
    _sleep(pool, 0.3, deadline=True)
    with pool.connection() as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_use_without_a_deadline_may_take_longer(pool: Pool) -> None:
    _sleep(pool, 1.5, deadline=False)


def test_timeouts_count_for_the_breaker(pool: Pool) -> None:
    assert pool.breaker is not None
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            _sleep(pool, 20, deadline=True)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        _sleep(pool, 0, deadline=True)
    assert time.monotonic() - started < 0.5  # open: no call reaches the database
    assert raised.value.cause == "timeout"
