"""The HTTP endpoint (health, readiness, metrics) over real sockets, first with the
in-memory core and fake probes, then against the real dependencies."""

from __future__ import annotations

import json
import logging
import smtplib
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_core.bootstrap import App, open_app
from ingest_core.errors import StoreUnavailable
from ingest_core.settings import Settings
from lmtpd import http
from lmtpd.http import HttpConfig, HttpServer
from lmtpd.metrics import REASONS, ServeMetrics
from lmtpd.serve import server_config
from lmtpd.server import LmtpServer, ServerConfig
from tests.server.conftest import DOMAIN, SelectiveStore, memory_core
from tests.server.http_client import exchange, get, parse_reply, sample, samples
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.server.conftest import MemoryCore

ACME = f"orders+acme@{DOMAIN}"
BODY = b"Message-ID: <po-1@buyer.example>\r\nSubject: PO\r\n\r\nOne crate.\r\n"


@dataclass
class FakeProbes:
    """Readiness checks and backlog values a test can break."""

    down: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    depth: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    verdicts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    count_reads: int = 0

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        return {name: self._check(name) for name in ("postgres", "object_store", "queue")}

    def _check(self, name: str) -> Callable[[], object]:
        def check() -> None:
            if name in self.hang:
                time.sleep(1.0)
            if name in self.down:
                raise StoreUnavailable(f"secret detail of {name}")

        return check

    def queue_depth(self) -> int:
        return self.depth

    def message_counts(self) -> dict[tuple[str, str], int]:
        self.count_reads += 1
        return dict(self.counts)

    def verdict_counts(self) -> dict[tuple[str, str, str], int]:
        return dict(self.verdicts)


@dataclass
class Observed:
    lmtp: LmtpServer
    http: HttpServer
    core: MemoryCore
    probes: FakeProbes

    @property
    def lmtp_host_port(self) -> tuple[str, int]:
        host, _, port = (self.lmtp.address or "").rpartition(":")
        return host, int(port)

    @property
    def address(self) -> str:
        return self.http.address or ""


@pytest.fixture
def start_observed(nursery: trio.Nursery):
    async def start(http_config: HttpConfig | None = None, **lmtp: object) -> Observed:
        probes = FakeProbes()
        metrics = ServeMetrics(probes)
        core = memory_core(SelectiveStore())
        config = replace(ServerConfig(hostname="lmtp.test"), **lmtp)  # type: ignore[arg-type]
        server = LmtpServer(core.service, config, metrics)
        await nursery.start(server.serve, "127.0.0.1:0")
        endpoint = HttpServer(metrics, probes, http_config)
        await nursery.start(endpoint.serve, "127.0.0.1:0")
        return Observed(server, endpoint, core, probes)

    return start


def lmtp_send(address: tuple[str, int], recipients: list[str], data: bytes = BODY) -> list[int]:
    """RCPT codes of refused recipients and the DATA replies of the accepted ones."""
    with smtplib.LMTP(*address, timeout=30) as client:
        client.ehlo()
        client.mail("buyer@example.org")
        codes = [client.rcpt(r)[0] for r in recipients]
        accepted = codes.count(250)
        refused = [c for c in codes if c != 250]
        if not accepted:
            return refused
        assert client.docmd("DATA")[0] == 354
        client.send(data + b".\r\n")
        return refused + [client.getreply()[0] for _ in range(accepted)]


# ------------------------------------------------------------------ the basics


async def test_healthz_is_ok_and_head_has_no_body(start_observed) -> None:
    h = await start_observed()
    reply = await get(h.address, "/healthz")
    assert (reply.status, reply.text) == (200, "ok\n")
    assert reply.headers["connection"] == "close"
    assert reply.headers["content-length"] == "3"
    head = await get(h.address, "/healthz", method="HEAD")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "3")


async def test_unknown_path_method_and_garbage(start_observed) -> None:
    h = await start_observed()
    assert (await get(h.address, "/nope")).status == 404
    assert (await get(h.address, "/healthz?verbose=1")).status == 200
    post = await get(h.address, "/metrics", method="POST")
    assert (post.status, post.headers["allow"]) == (405, "GET, HEAD")
    garbage = parse_reply(await exchange(h.address, b"\x00\xff<script>\r\n\r\n"))
    assert garbage.status == 400
    assert b"script" not in garbage.body


async def test_request_head_is_capped(start_observed) -> None:
    h = await start_observed()
    huge = b"GET /healthz HTTP/1.1\r\nX-Fill: " + b"a" * 20000 + b"\r\n\r\n"
    reply = parse_reply(await exchange(h.address, huge))
    assert reply.status == 431


async def test_slow_client_gets_408(start_observed, autojump_clock) -> None:
    h = await start_observed(HttpConfig(read_timeout_s=5.0))
    host, _, port = h.address.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /healthz HTTP/1.1\r\n")  # ...and never the blank line
    started = trio.current_time()
    received = bytearray()
    while chunk := await stream.receive_some(4096):
        received += chunk
    assert parse_reply(bytes(received)).status == 408
    assert 5.0 <= trio.current_time() - started < 6.0
    await stream.aclose()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_or_echo(data: bytes) -> None:
    """Whatever arrives, the reply is one of the fixed responses and repeats
    nothing of the request."""
    allowed = {
        r.encode(head_only=False)
        for r in (http.BAD_REQUEST, http.NOT_FOUND, http.METHOD_NOT_ALLOWED, http.REQUEST_TIMEOUT)
    }

    async def main() -> bytes:
        server = HttpServer(ServeMetrics(), FakeProbes(), HttpConfig(read_timeout_s=1.0))
        client, server_side = trio.testing.memory_stream_pair()
        await server._slots.acquire()  # handle() releases the slot its accept loop took
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, server_side)
            await client.send_all(data)
            await client.send_eof()
            received = bytearray()
            while chunk := await client.receive_some(65536):
                received += chunk
        return bytes(received)

    reply = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    if reply.startswith(b"HTTP/1.1 200") or b"/metrics" in data or b"/readyz" in data:
        return  # a valid request for a real route: answered normally
    assert reply in allowed


def test_parse_head_accepts_only_get_and_head() -> None:
    assert http.parse_head(b"GET /metrics HTTP/1.1\r\n\r\n") == http.Request(b"GET", b"/metrics")
    assert http.parse_head(b"HEAD /a?b HTTP/1.0\r\n\r\n") == http.Request(b"HEAD", b"/a")
    assert http.parse_head(b"DELETE / HTTP/1.1\r\n\r\n") is http.METHOD_NOT_ALLOWED
    assert http.parse_head(b"GET http://x/ HTTP/1.1\r\n\r\n") is http.BAD_REQUEST
    assert http.parse_head(b"GET / HTTP/2.0\r\n\r\n") is http.BAD_REQUEST
    assert http.parse_head(b"GET  / HTTP/1.1\r\n\r\n") is http.BAD_REQUEST


# ------------------------------------------------------------------- readiness


async def test_readyz_reports_each_check(start_observed) -> None:
    h = await start_observed()
    reply = await get(h.address, "/readyz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    body = json.loads(reply.body)
    assert set(body) == {"postgres", "object_store", "queue"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body.values())

    h.probes.down.add("queue")
    reply = await get(h.address, "/readyz")
    body = json.loads(reply.body)
    assert reply.status == 503
    assert body["queue"] == {"ok": False, "error": "unavailable"}
    assert body["postgres"]["ok"]
    assert b"secret" not in reply.body


async def test_readyz_times_out_a_hanging_check_and_runs_one_at_a_time(start_observed) -> None:
    h = await start_observed(HttpConfig(check_timeout_s=0.2))
    h.probes.hang.add("postgres")
    first = await get(h.address, "/readyz")
    second = await get(h.address, "/readyz")  # the first call is still running
    assert first.status == second.status == 503
    assert json.loads(first.body)["postgres"] == {"ok": False, "error": "timeout"}
    assert json.loads(second.body)["postgres"] == {"ok": False, "error": "timeout"}
    await trio.sleep(1.2)
    h.probes.hang.clear()
    assert (await get(h.address, "/readyz")).status == 200


async def test_readyz_is_503_once_shutdown_began(start_observed) -> None:
    h = await start_observed()
    h.http.shutting_down = h.lmtp.closing.is_set
    h.lmtp.shutdown()
    reply = await get(h.address, "/readyz")
    assert reply.status == 503
    assert b"shutting down" in reply.body
    assert (await get(h.address, "/healthz")).status == 200


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
    from ingest_core.ports import RecipientDecision, Reply

    metrics = ServeMetrics()
    acme = Tenant(uuid.uuid4(), "acme", "Acme")
    metrics.milter_decision(
        RecipientDecision(f"orders+acme@{DOMAIN}", Reply(250, "2.1.5", "OK"), acme)
    )
    metrics.milter_decision(RecipientDecision(f"orders+nobody@{DOMAIN}", addressing.UNKNOWN_TENANT))
    metrics.milter_decision(RecipientDecision(f"orders+gone@{DOMAIN}", addressing.DISABLED_TENANT))
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


# ------------------------------------------------ against the real dependencies


def real_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, domains=(DOMAIN,)).with_(
        log_format="console", **overrides
    )


async def serve_app(nursery: trio.Nursery, app: App) -> tuple[tuple[str, int], str]:
    """LMTP and HTTP over the real app; returns the LMTP (host, port) and HTTP address."""
    metrics = ServeMetrics(app)
    lmtp = LmtpServer(app.service, server_config(app.settings), metrics)
    lmtp_address = await nursery.start(lmtp.serve, "127.0.0.1:0")
    http_address = await nursery.start(HttpServer(metrics, app).serve, "127.0.0.1:0")
    host, _, port = lmtp_address.rpartition(":")
    return (host, int(port)), http_address


async def test_readyz_and_metrics_against_postgres_local_store_and_sqlite_queue(
    nursery, data_dir: Path, pg_url: str
) -> None:
    with open_app(real_settings(data_dir, pg_url)) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("globex", "Globex")
        lmtp, address = await serve_app(nursery, app)
        ready = await get(address, "/readyz")
        assert ready.status == 200, ready.text
        body = json.loads(ready.body)
        assert {name: check["ok"] for name, check in body.items()} == {
            "postgres": True,
            "object_store": True,
            "queue": True,
        }
        codes = await trio.to_thread.run_sync(lmtp_send, lmtp, [ACME, f"orders+nobody@{DOMAIN}"])
        assert codes == [550, 250]
        text = (await get(address, "/metrics")).text
        assert sample(text, "ingest_lmtp_recipients_total", reason="ok", tenant="acme") == 1
        assert sample(text, "ingest_lmtp_recipients_total", reason="unknown_tenant") == 1
        assert sample(text, "ingest_queue_depth") == 1
        assert sample(text, "ingest_messages", tenant="acme", status="RECEIVED") == 1
        assert sample(text, "ingest_messages", tenant="globex", status="RECEIVED") == 0
        assert len(samples(text, "ingest_messages")) == 2 * 5


async def test_readyz_names_a_broken_object_store(nursery, data_dir: Path, pg_url: str) -> None:
    blocker = data_dir / "not-a-folder"
    blocker.write_bytes(b"")
    settings = real_settings(data_dir, pg_url, object_store_url=f"file://{blocker}")
    with open_app(settings) as app:
        _, address = await serve_app(nursery, app)
        reply = await get(address, "/readyz")
        body = json.loads(reply.body)
        assert reply.status == 503
        assert body["object_store"] == {"ok": False, "error": "unavailable"}
        assert body["postgres"]["ok"]
        assert body["queue"]["ok"]


async def test_readyz_names_an_unreachable_database(
    nursery, data_dir: Path, closed_port: int
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{closed_port}/none"
    with open_app(real_settings(data_dir, url, store_timeout_s=1.0)) as app:
        _, address = await serve_app(nursery, app)
        reply = await get(address, "/readyz")
        body = json.loads(reply.body)
        assert reply.status == 503
        assert body["postgres"] == {"ok": False, "error": "unavailable"}
        assert body["object_store"]["ok"]
        assert body["queue"]["ok"]
        text = (await get(address, "/metrics")).text
        assert sample(text, "ingest_backlog_scrape_ok", source="messages") == 0
        assert sample(text, "ingest_queue_depth") == 0
