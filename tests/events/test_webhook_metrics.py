"""Webhook metrics: read from the delivery log at scrape time."""

from __future__ import annotations

import trio

from ingest_core.adapters.postgres import health
from lmtpd.metrics import ServeMetrics
from tests.events.receiver import Answer, Receiver
from tests.events.test_delivery import World
from tests.server.conftest import FakeProbes
from tests.server.http_client import sample


async def test_deliveries_and_the_oldest_pending_are_exposed() -> None:
    probes = FakeProbes(
        webhook_counts={("acme", "delivered"): 7, ("acme", "http_error"): 2},
        webhook_ages={"acme": 42.5},
    )
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_webhook_deliveries_total", tenant="acme", outcome="delivered") == 7
    assert sample(text, "ingest_webhook_deliveries_total", tenant="acme", outcome="http_error") == 2
    assert sample(text, "ingest_webhook_oldest_pending_seconds", tenant="acme") == 42.5
    assert sample(text, "ingest_backlog_scrape_ok", source="webhooks") == 1


def test_the_database_counts_attempts_by_outcome(pg_pool) -> None:
    world = World(pg_pool)
    receiver = Receiver()
    try:
        world.endpoints.add("acme", receiver.url)
        receiver.script.append(Answer(500))
        world.receive("a@example.com")
        world.receive("b@example.com")
        world.dispatcher.run_once()
    finally:
        receiver.close()
    assert health.webhook_attempts(pg_pool, 5.0) == {
        ("acme", "http_error"): 1,
        ("acme", "delivered"): 1,
    }
    assert set(health.webhook_oldest_pending(pg_pool, 5.0)) == {"acme"}


async def test_attempt_latency_is_a_histogram() -> None:
    probes = FakeProbes(
        webhook_latency=[(0.05, 1), (0.1, 3), (float("inf"), 4)], webhook_latency_sum=12.5
    )
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    name = "ingest_webhook_attempt_duration_seconds"
    assert sample(text, f"{name}_bucket", le="0.1") == 3
    assert sample(text, f"{name}_bucket", le="+Inf") == 4
    assert sample(text, f"{name}_count") == 4
    assert sample(text, f"{name}_sum") == 12.5


def test_the_database_reads_attempt_latency(pg_pool) -> None:
    world = World(pg_pool)
    receiver = Receiver()
    try:
        world.endpoints.add("acme", receiver.url)
        world.receive()
        world.dispatcher.run_once()
    finally:
        receiver.close()
    buckets, total = health.webhook_attempt_latency(pg_pool, 5.0)
    assert buckets[-1] == (float("inf"), 1)
    assert total >= 0
