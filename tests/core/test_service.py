"""The durable-accept use case against the in-memory fakes."""

from __future__ import annotations

import pytest

from ingest_core.adapters.memory import (
    MemoryBlobStore,
    MemoryJobQueue,
    MemoryMessageRepository,
    MemoryTenantDirectory,
)
from ingest_core.model import MessageStatus, TenantStatus
from ingest_core.ports import Envelope
from ingest_core.service import AcceptConfig, InboundService
from ingest_core.spool import Spool

DOMAIN = "orders.example.com"
MESSAGE = (
    b"Received: from edge by mx\r\n"
    b"Message-ID: <po-1@buyer.example>\r\n"
    b"From: Buyer <buyer@example.org>\r\n"
    b"Subject: =?utf-8?q?Bestellung_=C3=BCber_5?=\r\n"
    b"\r\n"
    b"Please ship.\r\n"
)


class World:
    def __init__(self) -> None:
        self.tenants = MemoryTenantDirectory()
        self.acme = self.tenants.add("acme")
        self.globex = self.tenants.add("globex")
        self.tenants.add("gone", TenantStatus.DISABLED)
        self.store = MemoryBlobStore()
        self.repo = MemoryMessageRepository()
        self.queue = MemoryJobQueue()
        self.service = InboundService(
            config=AcceptConfig(domains=(DOMAIN,), mailbox="orders"),
            tenants=self.tenants,
            store=self.store,
            repository=self.repo,
            queue=self.queue,
        )

    def deliver(self, data: bytes, *slugs: str, xforward: dict[str, str] | None = None):
        decisions = tuple(
            self.service.check_recipient(f"orders+{s}@{DOMAIN}", False) for s in slugs
        )
        assert all(d.accepted for d in decisions)
        envelope = Envelope(
            mail_from="buyer@example.org", recipients=decisions, xforward=xforward or {}
        )
        return self.service.accept(envelope, Spool.from_bytes(data))


@pytest.fixture
def world() -> World:
    return World()


def test_check_recipient_codes(world: World) -> None:
    check = world.service.check_recipient
    assert check(f"orders+acme@{DOMAIN}", False).accepted
    assert check(f"orders+nobody@{DOMAIN}", False).reply.enhanced == "5.1.1"
    assert check(f"orders+gone@{DOMAIN}", False).reply.enhanced == "5.2.1"
    assert check("orders+acme@elsewhere.example", False).reply.enhanced == "5.1.2"
    assert check(f"postmaster@{DOMAIN}", False).reply.code == 550
    world.tenants.unavailable = True
    unavailable = check(f"orders+acme@{DOMAIN}", False)
    assert (unavailable.reply.code, unavailable.reply.enhanced) == (451, "4.4.3")
    assert not unavailable.accepted


def test_accepted_message_is_stored_recorded_and_enqueued(world: World) -> None:
    [outcome] = world.deliver(MESSAGE, "acme", xforward={"ADDR": "192.0.2.7", "IDENT": "4Q1x"})
    assert outcome.reply.code == 250
    assert str(outcome.message_id) in outcome.reply.text
    row = world.repo.rows[outcome.message_id]
    assert row.org_id == world.acme.id
    assert row.source_message_id == "po-1@buyer.example"
    assert row.subject == "Bestellung über 5"
    assert row.from_header == "Buyer <buyer@example.org>"
    assert row.client_address == "192.0.2.7"
    assert row.postfix_queue_id == "4Q1x"
    assert row.status is MessageStatus.RECEIVED
    assert world.store.objects[row.raw_object_key] == MESSAGE
    assert row.raw_object_key == f"raw/{world.acme.id}/{row.sha256}.eml"
    assert world.queue.jobs == [outcome.message_id]


def test_redelivery_with_an_extra_trace_line_is_one_row(world: World) -> None:
    [first] = world.deliver(MESSAGE, "acme")
    [again] = world.deliver(b"Received: from retry\r\n" + MESSAGE, "acme")
    assert again.message_id == first.message_id
    assert again.reply.code == 250
    assert again.reply.text.endswith("duplicate")
    assert len(world.repo.rows) == 1
    assert world.queue.jobs == [first.message_id]


def test_same_message_to_two_tenants_is_two_rows(world: World) -> None:
    outcomes = world.deliver(MESSAGE, "acme", "globex")
    assert [o.reply.code for o in outcomes] == [250, 250]
    assert outcomes[0].message_id != outcomes[1].message_id
    assert {r.org_id for r in world.repo.rows.values()} == {world.acme.id, world.globex.id}


def test_reused_message_id_with_other_content_gets_its_own_row(world: World) -> None:
    [first] = world.deliver(MESSAGE, "acme")
    [other] = world.deliver(MESSAGE.replace(b"Please ship.", b"Cancel it."), "acme")
    assert other.reply.code == 250
    assert other.message_id != first.message_id
    row = world.repo.rows[other.message_id]
    assert row.source_message_id.startswith("po-1@buyer.example#")


def test_missing_message_id_uses_the_content_hash(world: World) -> None:
    data = b"Subject: no id\r\n\r\nbody\r\n"
    [first] = world.deliver(data, "acme")
    [again] = world.deliver(b"Received: x\r\n" + data, "acme")
    assert first.message_id == again.message_id
    assert world.repo.rows[first.message_id].source_message_id.startswith("sha256:")


def test_store_failure_is_451_and_nothing_recorded(world: World) -> None:
    world.store.failing = True
    [outcome] = world.deliver(MESSAGE, "acme")
    assert (outcome.reply.code, outcome.reply.enhanced) == (451, "4.3.0")
    assert outcome.message_id is None
    assert world.repo.rows == {}
    assert world.queue.jobs == []


def test_database_failure_is_451_for_that_recipient(world: World) -> None:
    world.repo.failing = True
    outcomes = world.deliver(MESSAGE, "acme", "globex")
    assert [o.reply.code for o in outcomes] == [451, 451]


def test_queue_failure_still_accepts_and_leaves_row_for_sweeper(world: World) -> None:
    world.queue.failing = True
    [outcome] = world.deliver(MESSAGE, "acme")
    assert outcome.reply.code == 250
    assert world.repo.rows[outcome.message_id].status is MessageStatus.RECEIVED


def test_same_tenant_twice_gets_two_replies_one_row(world: World) -> None:
    decisions = (
        world.service.check_recipient(f"orders+acme@{DOMAIN}", False),
        world.service.check_recipient(f"orders+ACME@{DOMAIN}", False),
    )
    outcomes = world.service.accept(
        Envelope(mail_from="", recipients=decisions), Spool.from_bytes(MESSAGE)
    )
    assert [o.address for o in outcomes] == [d.address for d in decisions]
    assert outcomes[0].message_id == outcomes[1].message_id
    assert len(world.repo.rows) == 1


def test_check_recipient_now_answers_without_io_only_when_it_can(world: World) -> None:
    from ingest_core.tenant_cache import CachingTenantDirectory

    now = world.service.check_recipient_now
    assert now("orders+acme@elsewhere.example", False).reply.enhanced == "5.1.2"
    assert now(f"postmaster@{DOMAIN}", False).reply.code == 550
    assert now(f"orders+acme@{DOMAIN}", False) is None  # no cache: must ask

    cached = InboundService(
        config=AcceptConfig(domains=(DOMAIN,), mailbox="orders"),
        tenants=CachingTenantDirectory(world.tenants, ttl_s=60),
        store=world.store,
        repository=world.repo,
        queue=world.queue,
    )
    assert cached.check_recipient_now(f"orders+acme@{DOMAIN}", False) is None
    assert cached.check_recipient(f"orders+acme@{DOMAIN}", False).accepted
    world.tenants.unavailable = True  # a live cached answer needs no directory
    fast = cached.check_recipient_now(f"orders+ACME@{DOMAIN}", False)
    assert fast is not None
    assert fast.accepted
    assert fast.tenant == world.acme
    assert cached.check_recipient(f"orders+gone@{DOMAIN}", False).reply.code == 451
    assert cached.check_recipient_now(f"orders+gone@{DOMAIN}", False) is None


def test_an_unexpected_queue_error_after_commit_still_gets_250(world: World) -> None:
    def broken(message_id):
        raise RuntimeError("bug in a queue adapter")

    world.queue.enqueue_extraction = broken  # type: ignore[method-assign]
    [outcome] = world.deliver(MESSAGE, "acme")
    assert outcome.reply.code == 250
    assert world.repo.rows[outcome.message_id].status is MessageStatus.RECEIVED
