"""The metrics the HTTP endpoint serves: counters fed by the LMTP server and the
milter, the scrape-time backlog values, and their failure modes."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import trio

from ingest_core.errors import StoreUnavailable
from lmtpd.metrics import REASONS, ServeMetrics
from tests.server.conftest import ACME, BODY, DOMAIN, FakeProbes, lmtp_send
from tests.server.http_client import get, sample, samples
from tests.server.rawclient import RawClient

# --------------------------------------------------------------------- metrics


async def test_metrics_count_outcomes_by_reason_and_tenant(start_observed) -> None:
    h = await start_observed(max_message_bytes=2000)
    h.probes.depth = 3
    h.probes.counts = {("acme", "RECEIVED"): 2, ("acme", "FAILED"): 0}
    address = h.lmtp_host_port
    send = trio.to_thread.run_sync
    assert await send(lmtp_send, address, [ACME]) == [250]
    assert await send(lmtp_send, address, [ACME]) == [250]  # a redelivery
    refused = [
        f"orders+nobody@{DOMAIN}",
        f"orders+gone@{DOMAIN}",
        "orders+acme@elsewhere.example",
        f"orders@{DOMAIN}",
        f"postmaster@{DOMAIN}",
    ]
    assert await send(lmtp_send, address, refused) == [550] * 5
    h.core.store.failing_orgs.add(h.core.tenants.tenants["globex"].id)
    assert await send(lmtp_send, address, [f"orders+globex@{DOMAIN}"]) == [451]
    big = BODY + b"x" * 3000 + b"\r\n"
    assert await send(lmtp_send, address, [ACME], big) == [552]
    h.core.tenants.unavailable = True
    assert await send(lmtp_send, address, [f"orders+initech@{DOMAIN}"]) == [451]

    reply = await get(h.address, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    recipients = samples(text, "ingest_lmtp_recipients_total")
    expected = {
        ("accepted", "ok", "acme"): 1,
        ("accepted", "duplicate", "acme"): 1,
        ("rejected", "unknown_tenant", ""): 1,
        ("rejected", "tenant_disabled", "gone"): 1,
        ("rejected", "wrong_domain", ""): 1,
        ("rejected", "unknown_mailbox", ""): 1,
        ("rejected", "role_address", ""): 1,
        ("deferred", "storage_unavailable", "globex"): 1,
        ("rejected", "oversize", "acme"): 1,
        ("deferred", "directory_unavailable", ""): 1,
    }
    got = {
        tuple(dict(k)[n] for n in ("outcome", "reason", "tenant")): v for k, v in recipients.items()
    }
    assert got == expected
    assert {reason for _, reason, _ in got} <= REASONS
    # three transactions reached the end of data within the size limit
    assert sample(text, "ingest_accept_duration_seconds_count") == 3
    assert sample(text, "ingest_received_bytes_total") == 3 * len(BODY)
    assert sample(text, "ingest_lmtp_connections_open") == 0
    assert sample(text, "ingest_queue_depth") == 3
    assert sample(text, "ingest_messages", tenant="acme", status="RECEIVED") == 2
    assert sample(text, "ingest_messages", tenant="acme", status="FAILED") == 0
    assert sample(text, "ingest_backlog_scrape_ok", source="messages") == 1


async def test_protocol_refusals_are_logged_and_counted(start_observed, caplog) -> None:
    h = await start_observed(max_recipients=1)
    client = await RawClient.connect(h.lmtp.address or "")
    await client.hello()
    with caplog.at_level(logging.INFO, logger="ingest.lmtp"):
        await client.send(b"BOGUS secret-text\r\n")
        assert (await client.reply())[0] == 500
        await client.send(b"MAIL FROM:<a@b.example>\r\n")
        assert (await client.reply())[0] == 250
        await client.send(f"RCPT TO:<{ACME}>\r\n".encode())
        assert (await client.reply())[0] == 250
        await client.send(f"RCPT TO:<{ACME}>\r\n".encode())
        assert (await client.reply())[0] == 452
        await client.send(b"QUIT\r\n")
        await client.reply()
    await client.aclose()
    refused = [r for r in caplog.records if r.getMessage() == "command refused"]
    assert [(r.code, r.enhanced) for r in refused] == [(500, "5.5.1"), (452, "4.5.3")]
    assert not any("secret-text" in str(r.__dict__) for r in caplog.records)
    text = (await get(h.address, "/metrics")).text
    assert sample(text, "ingest_lmtp_protocol_refusals_total", code="500", enhanced="5.5.1") == 1
    assert sample(text, "ingest_lmtp_protocol_refusals_total", code="452", enhanced="4.5.3") == 1
    assert (
        sample(
            text,
            "ingest_lmtp_recipients_total",
            outcome="deferred",
            reason="too_many_recipients",
            tenant="",
        )
        == 1
    )


async def test_milter_decisions_are_counted_with_the_same_vocabulary() -> None:
    from ingest_core import addressing
    from ingest_core.model import Tenant
    from ingest_core.ports import Reason, RecipientDecision, Reply

    metrics = ServeMetrics()
    acme = Tenant(uuid.uuid4(), "acme", "Acme")
    ok, unknown, disabled = Reason.OK, Reason.UNKNOWN_TENANT, Reason.TENANT_DISABLED
    metrics.milter_decision(
        RecipientDecision(f"orders+acme@{DOMAIN}", Reply(250, "2.1.5", "OK"), acme, reason=ok)
    )
    nobody, gone = f"orders+nobody@{DOMAIN}", f"orders+gone@{DOMAIN}"
    metrics.milter_decision(RecipientDecision(nobody, addressing.UNKNOWN_TENANT, reason=unknown))
    metrics.milter_decision(RecipientDecision(gone, addressing.DISABLED_TENANT, reason=disabled))
    text = (await metrics.render(trio.CapacityLimiter(1))).decode()
    got = samples(text, "ingest_milter_recipients_total")
    assert {tuple(dict(k).values()) for k in got} == {
        ("accepted", "ok", "acme"),
        ("rejected", "unknown_tenant", ""),
        ("rejected", "tenant_disabled", "gone"),
    }


async def test_connections_gauge_follows_open_lmtp_connections(start_observed) -> None:
    h = await start_observed()
    clients = [await RawClient.connect(h.lmtp.address or "") for _ in range(2)]
    for client in clients:
        await client.hello()
    text = (await get(h.address, "/metrics")).text
    assert sample(text, "ingest_lmtp_connections_open") == 2
    for client in clients:
        await client.aclose()
    for _ in range(500):  # the server notices the close on its next read
        if not sample((await get(h.address, "/metrics")).text, "ingest_lmtp_connections_open"):
            break
        await trio.sleep(0.01)
    else:
        pytest.fail("the connections gauge did not drop to 0")


async def test_backlog_is_cached_between_scrapes(start_observed) -> None:
    h = await start_observed()
    h.probes.counts = {("acme", "PROCESSED"): 1}
    await get(h.address, "/metrics")
    h.probes.counts = {("acme", "PROCESSED"): 5}
    text = (await get(h.address, "/metrics")).text
    assert h.probes.count_reads == 1
    assert sample(text, "ingest_messages", tenant="acme", status="PROCESSED") == 1


async def test_sender_verdicts_are_exposed_per_tenant() -> None:
    probes = FakeProbes(verdicts={("acme", "dmarc", "fail"): 2, ("acme", "spf", "pass"): 5})
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_sender_verdicts", tenant="acme", check="dmarc", result="fail") == 2
    assert sample(text, "ingest_sender_verdicts", tenant="acme", check="spf", result="pass") == 5
    assert sample(text, "ingest_backlog_scrape_ok", source="verdicts") == 1


async def test_stored_bytes_are_exposed_per_tenant() -> None:
    probes = FakeProbes(stored={"acme": 12345, "other": 0})
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_stored_bytes", tenant="acme") == 12345
    assert sample(text, "ingest_stored_bytes", tenant="other") == 0
    assert sample(text, "ingest_backlog_scrape_ok", source="stored") == 1


async def test_the_last_purge_runs_removals_are_exposed() -> None:
    probes = FakeProbes(purged={"messages": 3, "objects": 4, "bytes": 512})
    text = (await ServeMetrics(probes).render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_purge_last_run_removed", what="messages") == 3
    assert sample(text, "ingest_purge_last_run_removed", what="objects") == 4
    assert sample(text, "ingest_purge_last_run_removed", what="bytes") == 512
    assert sample(text, "ingest_backlog_scrape_ok", source="purge") == 1


async def test_a_failing_backlog_source_is_left_out_and_flagged() -> None:
    class Broken(FakeProbes):
        def message_counts(self) -> dict[tuple[str, str], int]:
            raise StoreUnavailable("database down (test)")

        def verdict_counts(self) -> dict[tuple[str, str, str], int]:
            asked.append("verdicts")  # the same database: not asked twice per scrape
            return {}

    asked: list[str] = []
    metrics = ServeMetrics(Broken(depth=4))
    text = (await metrics.render(trio.CapacityLimiter(1))).decode()
    assert asked == []
    assert sample(text, "ingest_backlog_scrape_ok", source="verdicts") == 0
    assert sample(text, "ingest_queue_depth") == 4
    assert samples(text, "ingest_messages") == {}
    assert sample(text, "ingest_backlog_scrape_ok", source="messages") == 0
    assert sample(text, "ingest_backlog_scrape_ok", source="queue") == 1


async def test_a_slow_backlog_source_does_not_hold_up_the_scrape() -> None:
    class Slow(FakeProbes):
        def message_counts(self) -> dict[tuple[str, str], int]:
            time.sleep(1.0)
            return {("acme", "RECEIVED"): 7}

    metrics = ServeMetrics(Slow(), scrape_timeout_s=0.1)
    started = time.monotonic()
    text = (await metrics.render(trio.CapacityLimiter(1))).decode()
    assert time.monotonic() - started < 0.8
    assert samples(text, "ingest_messages") == {}
    await trio.sleep(1.2)  # the abandoned read finished and stored its values
    text = (await metrics.render(trio.CapacityLimiter(1))).decode()
    assert sample(text, "ingest_messages", tenant="acme", status="RECEIVED") == 7


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = ServeMetrics(), ServeMetrics()
    first.received_bytes.inc(10)
    assert first.registry is not second.registry
    assert second.received_bytes._value.get() == 0
