"""The HTTP endpoint (health, readiness) over real sockets, first with the
in-memory core and fake probes, then against the real dependencies. The metrics
it serves: ``test_metrics.py``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_core.bootstrap import App, open_app
from ingest_core.settings import Settings
from lmtpd.cli.serve import server_config
from lmtpd.http import HttpConfig, HttpServer
from lmtpd.metrics import ServeMetrics
from lmtpd.server import LmtpServer
from tests.server.conftest import ACME, DOMAIN, FakeProbes, lmtp_send
from tests.server.http_client import exchange, get, parse_reply, sample, samples

if TYPE_CHECKING:
    from pathlib import Path


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
    huge = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Fill: " + b"a" * 20000 + b"\r\n\r\n"
    reply = parse_reply(await exchange(h.address, huge))
    assert reply.status == 431


async def test_slow_client_is_cut_off(start_observed, autojump_clock) -> None:
    """A request head that never completes: the connection is closed after the
    read timeout, without a reply."""
    h = await start_observed(HttpConfig(read_timeout_s=5.0))
    host, _, port = h.address.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /healthz HTTP/1.1\r\n")  # ...and never the blank line
    started = trio.current_time()
    received = bytearray()
    while chunk := await stream.receive_some(4096):
        received += chunk
    assert bytes(received) == b""
    assert 5.0 <= trio.current_time() - started < 6.0
    await stream.aclose()


_FIXED_BODIES = {b"", b"not found\n", b"method not allowed\n", b"bad request\n"}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_or_echo(data: bytes) -> None:
    """Whatever arrives, the reply is one of the fixed responses (or none) and
    repeats nothing of the request."""

    async def main() -> bytes:
        server = HttpServer(ServeMetrics(), FakeProbes(), HttpConfig(read_timeout_s=1.0))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve, "127.0.0.1:0")
            host, _, port = address.rpartition(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                await stream.send_all(data)
                await stream.send_eof()
                received = bytearray()
                with trio.fail_after(10):
                    while chunk := await stream.receive_some(65536):
                        received += chunk
            nursery.cancel_scope.cancel()
        return bytes(received)

    reply = trio.run(main)
    if not reply:
        return
    if reply.startswith(b"HTTP/1.1 200") or b"/metrics" in data or b"/readyz" in data:
        return  # a valid request for a real route: answered normally
    parsed = parse_reply(reply)
    assert parsed.status in {400, 404, 405, 431}
    assert parsed.body in _FIXED_BODIES


async def test_only_get_and_head_on_well_formed_requests(start_observed) -> None:
    h = await start_observed()
    assert (await get(h.address, "/metrics?x=1", method="HEAD")).status == 200
    assert (await get(h.address, "/healthz", method="DELETE")).status == 405
    for request in (b"GET / HTTP/2.0\r\n\r\n", b"GET  / HTTP/1.1\r\n\r\n"):
        reply = parse_reply(await exchange(h.address, request))
        assert reply.status in {400, 404}
        assert reply.body in _FIXED_BODIES


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
        # The job is enqueued after the reply (the row is the truth): wait for it.
        for _ in range(500):
            text = (await get(address, "/metrics")).text
            if sample(text, "ingest_queue_depth") == 1:
                break
            await trio.sleep(0.02)
        assert sample(text, "ingest_queue_depth") == 1
        assert sample(text, "ingest_lmtp_recipients_total", reason="ok", tenant="acme") == 1
        assert sample(text, "ingest_lmtp_recipients_total", reason="unknown_tenant") == 1
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
        assert body["object_store"] == {"ok": False, "error": "not a folder"}
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
        assert body["postgres"] == {"ok": False, "error": "connection refused"}
        assert body["object_store"]["ok"]
        assert body["queue"]["ok"]
        text = (await get(address, "/metrics")).text
        assert sample(text, "ingest_backlog_scrape_ok", source="messages") == 0
        assert sample(text, "ingest_queue_depth") == 0
