"""``ingest_automated_messages{tenant,kind}``: the scrape-time counts of
automated mail per tenant and kind."""

from __future__ import annotations

import trio

from lmtpd.metrics import ServeMetrics
from tests.server.conftest import FakeProbes
from tests.server.http_client import sample


async def test_automated_messages_are_exposed_per_tenant_and_kind() -> None:
    probes = FakeProbes(automated={("acme", "bounce"): 3, ("acme", "bulk"): 0})
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_automated_messages", tenant="acme", kind="bounce") == 3
    assert sample(text, "ingest_automated_messages", tenant="acme", kind="bulk") == 0
    assert sample(text, "ingest_backlog_scrape_ok", source="automated") == 1
