"""The circuit breaker: opens on consecutive unreachable failures, probes one call at a time."""

from __future__ import annotations

import threading

import pytest

from ingest_core.breaker import Breaker, CircuitOpen, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def unreachable(exc: BaseException) -> str | None:
    return "connection refused" if isinstance(exc, ConnectionError) else None


def fail(breaker: Breaker, exc: Exception | None = None) -> None:
    with pytest.raises(type(exc or ConnectionError())), breaker.guard(unreachable):
        raise exc or ConnectionRefusedError()


def test_opens_after_the_configured_consecutive_failures_and_fails_fast():
    breaker = Breaker("postgres", failures=3, reset_s=5, clock=Clock())
    for _ in range(2):
        fail(breaker)
    assert breaker.state is State.CLOSED
    fail(breaker)
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpen, match=r"postgres unavailable \(connection refused"):
        breaker.before_call()


def test_a_success_resets_the_count():
    breaker = Breaker("s3", failures=2, clock=Clock())
    fail(breaker)
    with breaker.guard(unreachable):
        pass
    fail(breaker)
    assert breaker.state is State.CLOSED


def test_errors_that_say_nothing_about_reachability_do_not_count():
    breaker = Breaker("postgres", failures=1, clock=Clock())
    fail(breaker, ValueError("the database refused the data"))
    assert breaker.state is State.CLOSED


def test_after_the_reset_time_one_probe_goes_through_and_closes_it():
    clock = Clock()
    breaker = Breaker("s3", failures=1, reset_s=5, clock=clock)
    fail(breaker)
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.2
    with breaker.guard(unreachable):
        assert breaker.state is State.PROBING
    assert breaker.state is State.CLOSED


def test_a_failed_probe_opens_it_for_another_reset_time():
    clock = Clock()
    breaker = Breaker("s3", failures=1, reset_s=5, clock=clock)
    fail(breaker)
    clock.now += 5
    fail(breaker)
    assert breaker.state is State.OPEN
    clock.now += 4
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_while_the_probe_is_out_other_calls_fail_at_once():
    clock = Clock()
    breaker = Breaker("postgres", failures=1, reset_s=5, clock=clock)
    fail(breaker)
    clock.now += 5
    probe_started, finish = threading.Event(), threading.Event()
    outcome: list[str] = []

    def probe() -> None:
        with breaker.guard(unreachable):
            probe_started.set()
            finish.wait(5)
        outcome.append("closed")

    thread = threading.Thread(target=probe)
    thread.start()
    assert probe_started.wait(5)
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    finish.set()
    thread.join(5)
    assert outcome == ["closed"]
    assert breaker.state is State.CLOSED


def test_a_probe_ending_without_a_verdict_lets_the_next_call_probe():
    clock = Clock()
    breaker = Breaker("postgres", failures=1, reset_s=5, clock=clock)
    fail(breaker)
    clock.now += 5
    fail(breaker, ValueError("refused data"))
    assert breaker.state is State.OPEN
    with breaker.guard(unreachable):
        pass
    assert breaker.state is State.CLOSED
