"""Cross-tenant isolation on the real Postgres repository, and the allow-lists
of the LMTP and milter ports.

Every read that serves a tenant takes an ``org_id``; one tenant's ids never
return another tenant's message or attachments. Only the operator queries
(``OperatorQueries``) are cross-tenant, on purpose.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import itertools
import uuid
from typing import TYPE_CHECKING

import pytest
import trio

from ingest_core.extraction import Outcome, extract_message
from ingest_core.model import MessageStatus
from ingest_core.ports import Envelope, MessageRepository
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from lmtpd.cli.serve import server_config
from lmtpd.milter import serve_milter
from tests.hostile.conftest import ACME, GLOBEX, memory_core
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from ingest_core.bootstrap import App
    from ingest_core.ports import RecipientDecision
    from tests.hostile.conftest import ServeMemory

pytestmark = pytest.mark.timeout(60)


def order(n: int) -> bytes:
    return (
        f"Message-ID: <iso-{n}@buyer.example>\r\nSubject: PO {n}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{n}.pdf"'
        f"\r\n\r\n%PDF order {n}\r\n--b--\r\n"
    ).encode()


def deliver(app: App, raw: bytes, *recipients: str) -> list[uuid.UUID]:
    decisions = tuple(app.service.check_recipient(r, False) for r in recipients)
    envelope = Envelope(mail_from="b@example.org", recipients=decisions)
    ids = [o.message_id for o in app.service.accept(envelope, Spool.from_bytes(raw))]
    assert None not in ids
    return [i for i in ids if i is not None]


def test_one_tenants_ids_never_return_another_tenants_data(pg_app: App) -> None:
    tenants = {t.slug: t.id for t in pg_app.admin.list()}
    owned: dict[uuid.UUID, uuid.UUID] = {}  # message id → owner org id
    for n in range(3):
        for slug, recipient in (("acme", ACME), ("globex", GLOBEX)):
            [message_id] = deliver(pg_app, order(n), recipient)
            owned[message_id] = tenants[slug]
    shared = deliver(pg_app, order(99), ACME, GLOBEX)  # the same bytes for both
    owned.update(zip(shared, (tenants["acme"], tenants["globex"]), strict=True))
    assert len(set(shared)) == 2
    repo = pg_app.repository
    for message_id in owned:
        result = extract_message(
            message_id, repo=repo, store=pg_app.store, config=pg_app.extraction
        )
        assert result.outcome is Outcome.PROCESSED

    for (message_id, owner), org_id in itertools.product(owned.items(), tenants.values()):
        row = repo.get(org_id, message_id)
        attachments = repo.list_attachments(org_id, message_id)
        if org_id == owner:
            assert row is not None
            assert row.org_id == owner
            assert len(attachments) == 1
            assert attachments[0].object_key.startswith(f"attachments/{owner}/")
        else:
            assert row is None
            assert attachments == []
    for slug, org_id in tenants.items():
        own = set(repo.ids_with_status(MessageStatus.PROCESSED, org_id))
        assert own == {m for m, o in owned.items() if o == org_id}, slug
    # A made-up id or org reveals nothing either.
    assert repo.get(uuid.uuid4(), next(iter(owned))) is None
    assert repo.list_attachments(uuid.uuid4(), next(iter(owned))) == []


def test_every_tenant_read_of_the_repository_port_takes_an_org_id() -> None:
    """Reads returning a tenant's data (message rows, attachments) require org_id;
    the rest are the worker's own by-id steps or return ids only."""
    by_id_worker_steps = {
        "claim", "finish", "fail", "reset_for_replay", "record_auth", "record_automated",
        "quarantine", "release",
    }  # fmt: skip
    ids_only = {"stale", "ids_with_status"}
    for name, method in inspect.getmembers(MessageRepository, inspect.isfunction):
        writes = {"record_received", "record_many"}  # each message carries its org_id
        if name.startswith("_") or name in by_id_worker_steps | ids_only | writes:
            continue
        assert "org_id" in inspect.signature(method).parameters, name


# ------------------------------------------------------------------ allow-lists

ONLY_127_0_0_2 = (ipaddress.ip_network("127.0.0.2/32"),)


async def connect_from(address: str, source: str) -> trio.SocketStream:
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host, int(port), local_address=source)


async def test_lmtp_refuses_peers_outside_its_allow_list(serve_memory: ServeMemory) -> None:
    h = await serve_memory(allow_from=ONLY_127_0_0_2)
    outsider = RawClient(await connect_from(h.address, "127.0.0.3"))
    code, lines = await outsider.reply()
    assert (code, lines[0][4:9]) == (554, b"5.7.1")
    assert await outsider.closed()
    insider = RawClient(await connect_from(h.address, "127.0.0.2"))
    await insider.hello()
    await insider.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\n".encode())
    assert await insider.codes(2) == [250, 250]
    assert h.core.repo.rows == {}


def test_the_lmtp_allow_list_comes_from_the_environment() -> None:
    settings = Settings.from_env({"INGEST_LMTP_ALLOW_FROM": "192.0.2.0/24, 2001:db8::/32"})
    assert server_config(settings).allow_from == (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )


async def test_milter_refuses_peers_outside_its_allow_list(nursery: trio.Nursery) -> None:
    core = memory_core()
    limiter = trio.CapacityLimiter(2)

    async def check(address: str) -> RecipientDecision:
        return await trio.to_thread.run_sync(
            core.service.check_recipient, address, True, limiter=limiter
        )

    bound = await nursery.start(
        functools.partial(serve_milter, "127.0.0.1:0", ONLY_127_0_0_2, check, lambda a: False)
    )
    negotiate = b"\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff"

    async def exchange(source: str) -> bytes:
        stream = await connect_from(bound, source)
        received = b""
        async with stream:
            try:
                await stream.send_all(negotiate)
                with trio.fail_after(10):
                    while len(received) < 4 or len(received) < 4 + received[3]:
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            break
                        received += chunk
            except trio.BrokenResourceError:
                pass  # a reset: nothing was said
        return received

    assert await exchange("127.0.0.3") == b""
    reply = await exchange("127.0.0.2")
    assert reply[4:5] == b"O"  # option negotiation answered
