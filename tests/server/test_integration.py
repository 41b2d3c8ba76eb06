"""The whole accept path over real components: smtplib.LMTP → trio server →
local object store + embedded Postgres + SQLite huey."""

from __future__ import annotations

import hashlib
import smtplib
from typing import TYPE_CHECKING

import pytest
import trio

from ingest_core.bootstrap import App, open_app
from ingest_core.model import MessageStatus, TenantStatus
from ingest_core.settings import Settings
from lmtpd.cli.serve import server_config
from lmtpd.server import LmtpServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DOMAIN = "orders.example.com"
MESSAGE = (
    b"Message-ID: <po-77@buyer.example>\r\nFrom: Buyer <buyer@example.org>\r\n"
    b"Subject: PO 77\r\n\r\nTwo pallets.\r\n..and a dot line\r\n"
)


def settings_for(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, domains=(DOMAIN,)).with_(
        log_format="console", **overrides
    )


@pytest.fixture
def app(data_dir: Path, pg_url: str) -> Iterator[App]:
    with open_app(settings_for(data_dir, pg_url)) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("globex", "Globex")
        app.admin.add("gone", "Gone")
        app.admin.set_status("gone", TenantStatus.DISABLED)
        yield app


async def serve(nursery: trio.Nursery, app: App) -> tuple[str, int]:
    server = LmtpServer(app.service, server_config(app.settings))
    address = await nursery.start(server.serve, "127.0.0.1:0")
    host, _, port = address.rpartition(":")
    return host, int(port)


def deliver(address: tuple[str, int], recipients: list[str], data: bytes = MESSAGE):
    """Returns (rcpt codes, data replies) using Python's smtplib.LMTP."""
    with smtplib.LMTP(*address, timeout=60) as client:
        client.ehlo()
        client.mail("buyer@example.org")
        rcpt = [client.rcpt(r)[0] for r in recipients]
        accepted = rcpt.count(250)
        if not accepted:
            return rcpt, []
        assert client.docmd("DATA")[0] == 354
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        client.send(stuffed + b".\r\n")
        return rcpt, [client.getreply() for _ in range(accepted)]


def pending_jobs(app: App) -> int:
    return int(app.huey.pending_count())


async def jobs_once_enqueued(app: App, expected: int) -> int:
    """The pending jobs, once ``expected`` are there (or after 10 s): the server
    enqueues after its replies, so a job may trail the 250 by a moment."""
    with trio.move_on_after(10):
        while pending_jobs(app) < expected:  # noqa: ASYNC110 (huey has no event to wait on)
            await trio.sleep(0.01)
    return pending_jobs(app)


async def test_accepted_message_has_row_identical_object_and_job(nursery, app: App) -> None:
    address = await serve(nursery, app)
    rcpt, replies = await trio.to_thread.run_sync(deliver, address, [f"orders+acme@{DOMAIN}"])
    assert rcpt == [250]
    [(code, text)] = replies
    assert code == 250
    message_id = text.decode().split()[1]
    [row] = app.operator.list_messages(org_slug="acme", status=None, limit=10)
    assert str(row["id"]) == message_id
    assert row["status"] == MessageStatus.RECEIVED
    key = app.operator.raw_object_key(row["id"])
    assert key is not None
    with app.store.open(key) as stored:
        raw = stored.read()
    assert raw == MESSAGE
    assert key.endswith(hashlib.sha256(MESSAGE).hexdigest() + ".eml")
    assert await jobs_once_enqueued(app, 1) == 1


async def test_redelivery_is_one_row_and_two_tenants_two_rows(nursery, app: App) -> None:
    address = await serve(nursery, app)
    acme, globex = f"orders+acme@{DOMAIN}", f"orders+globex@{DOMAIN}"
    _, first = await trio.to_thread.run_sync(deliver, address, [acme, globex])
    _, again = await trio.to_thread.run_sync(
        deliver, address, [acme], b"Received: from retry\r\n" + MESSAGE
    )
    assert [c for c, _ in first] == [250, 250]
    assert again[0][0] == 250
    assert again[0][1].endswith(b"duplicate")
    assert again[0][1].split()[1] == first[0][1].split()[1]
    rows = app.operator.list_messages(org_slug=None, status=None, limit=10)
    assert sorted(r["org_slug"] for r in rows) == ["acme", "globex"]
    assert await jobs_once_enqueued(app, 2) == 2


async def test_unknown_and_disabled_tenants_are_refused_at_rcpt(nursery, app: App) -> None:
    address = await serve(nursery, app)
    rcpt, _ = await trio.to_thread.run_sync(
        deliver,
        address,
        [f"orders+nobody@{DOMAIN}", f"orders+gone@{DOMAIN}", "orders+acme@elsewhere.example"],
    )
    assert rcpt == [550, 550, 550]
    assert app.operator.list_messages(org_slug=None, status=None, limit=10) == []


async def test_object_store_failure_is_451_and_no_row(nursery, data_dir: Path, pg_url: str) -> None:
    blocker = data_dir / "not-a-folder"
    blocker.write_bytes(b"")
    settings = settings_for(data_dir, pg_url, object_store_url=f"file://{blocker}")
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        address = await serve(nursery, app)
        _, [(code, text)] = await trio.to_thread.run_sync(
            deliver, address, [f"orders+acme@{DOMAIN}"]
        )
        assert (code, text[:5]) == (451, b"4.3.0")
        assert app.operator.list_messages(org_slug=None, status=None, limit=10) == []
        assert pending_jobs(app) == 0


async def test_database_unreachable_is_451_at_rcpt(
    nursery, data_dir: Path, closed_port: int
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{closed_port}/none"
    with open_app(settings_for(data_dir, url, store_timeout_s=2.0)) as app:
        address = await serve(nursery, app)
        rcpt, replies = await trio.to_thread.run_sync(deliver, address, [f"orders+acme@{DOMAIN}"])
        assert rcpt == [451]
        assert replies == []
