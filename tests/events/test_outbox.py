"""The outbox: one event per state change, in that change's transaction, on the
in-memory fake and on Postgres alike."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.memory import MemoryMessageRepository
from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.errors import RecordRejected
from tests.adapters.test_message_repository_contract import LONG_LEASE, attachment, message

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.ports import MessageRepository

API = "https://api.example.test"


@dataclass
class Outbox:
    repo: MessageRepository
    new_tenant: Callable[[], uuid.UUID]
    types: Callable[[uuid.UUID], list[str]]  # a message's events, oldest first


@pytest.fixture(params=["memory", "postgres"])
def outbox(request: pytest.FixtureRequest) -> Outbox:
    if request.param == "memory":
        memory = MemoryMessageRepository()
        return Outbox(
            memory,
            uuid.uuid4,
            lambda mid: [e.type.value for e in memory.events if e.message_id == mid],
        )
    pool = request.getfixturevalue("pg_pool")
    admin = TenantAdmin(pool)

    def types(mid: uuid.UUID) -> list[str]:
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT type FROM event WHERE message_id = %s ORDER BY created_at, id", (mid,)
            ).fetchall()
        return [row[0] for row in rows]

    return Outbox(
        PostgresMessageRepository(pool, api_url=API),
        lambda: admin.add(f"t-{uuid.uuid4().hex[:12]}", "Tenant").id,
        types,
    )


def test_a_new_message_emits_received_and_a_duplicate_nothing(outbox: Outbox) -> None:
    org = outbox.new_tenant()
    first, again = outbox.repo.record_many([message(org), message(org)])
    assert again.id == first.id
    outbox.repo.record_many([message(org)])
    assert outbox.types(first.id) == ["message.received"]


def test_a_conflict_stored_row_is_a_new_message(outbox: Outbox) -> None:
    org = outbox.new_tenant()
    first = outbox.repo.record_received(message(org, content="one"))
    other = outbox.repo.record_received(message(org, content="two"))
    assert other.id != first.id
    assert outbox.types(other.id) == ["message.received"]


def test_each_transition_emits_its_event_and_a_replay_a_second_processed(outbox: Outbox) -> None:
    repo, org = outbox.repo, outbox.new_tenant()
    mid = repo.record_received(message(org)).id
    assert repo.claim(mid, LONG_LEASE) is not None
    repo.quarantine(mid, "sender policy")
    assert repo.release(mid)
    assert not repo.release(mid)  # not quarantined any more: no change, no event
    assert repo.claim(mid, LONG_LEASE) is not None
    repo.finish(mid, [attachment("1")], "p1")
    assert repo.reset_for_replay(mid)
    assert repo.claim(mid, LONG_LEASE) is not None
    repo.finish(mid, [attachment("1")], "p1")
    assert outbox.types(mid) == [
        "message.received",
        "message.quarantined",
        "message.released",
        "message.processed",
        "message.processed",
    ]


def test_only_a_final_failure_emits_failed(outbox: Outbox) -> None:
    repo, org = outbox.repo, outbox.new_tenant()
    mid = repo.record_received(message(org)).id
    repo.claim(mid, LONG_LEASE)
    repo.fail(mid, "timeout", final=False)
    repo.claim(mid, LONG_LEASE)
    repo.fail(mid, "broken", final=True)
    assert outbox.types(mid) == ["message.received", "message.failed"]


def test_a_rolled_back_batch_leaves_no_event(outbox: Outbox) -> None:
    org = outbox.new_tenant()
    good = message(org, smid="good@example.com")
    with pytest.raises(RecordRejected):
        outbox.repo.record_many([good, message(org, smid="bad@example.com", size_bytes=-1)])
    recorded = outbox.repo.record_many([good])[0]
    assert outbox.types(recorded.id) == ["message.received"]


def test_the_payload_is_thin_and_points_at_the_api(pg_pool) -> None:
    admin = TenantAdmin(pg_pool)
    org = admin.add("acme", "Acme")
    repo = PostgresMessageRepository(pg_pool, api_url=API + "/")
    mid = repo.record_received(message(org.id, subject="PO " + "x" * 5000)).id
    repo.claim(mid, LONG_LEASE)
    many = [attachment(f"{n}", name="n" * 250 + ".pdf") for n in range(200)]
    repo.finish(mid, many, "p1")
    with pg_pool.connection() as conn:
        event_id, payload = conn.execute(
            "SELECT id, payload FROM event WHERE message_id = %s AND type = 'message.processed'",
            (mid,),
        ).fetchone()
    assert event_id.startswith("evt_")
    assert len(json.dumps(payload).encode()) < 20_000
    assert payload["type"] == "message.processed"
    data = payload["data"]
    assert data["tenant"] == "acme"
    assert data["message_id"] == str(mid)
    assert data["status"] == "PROCESSED"
    assert data["url"] == f"{API}/v1/messages/{mid}"
    assert data["attachment_count"] == 200
    assert data["attachments_truncated"] is True
    listed = data["attachments"][0]
    assert listed["url"] == f"{API}/v1/messages/{mid}/attachments/{listed['id']}"
    assert {"filename", "content_type", "detected_type", "size", "sha256"} <= listed.keys()
    assert data["from"] == "Buyer <buyer@example.net>"
    assert len(data["subject"]) == 300


def test_a_failure_text_is_not_sent(pg_pool) -> None:
    org = TenantAdmin(pg_pool).add("acme", "Acme")
    repo = PostgresMessageRepository(pg_pool, api_url=API)
    mid = repo.record_received(message(org.id)).id
    repo.claim(mid, LONG_LEASE)
    repo.fail(mid, "psycopg.OperationalError: host db-7.internal", final=True)
    with pg_pool.connection() as conn:
        [payload] = conn.execute(
            "SELECT payload FROM event WHERE message_id = %s AND type = 'message.failed'", (mid,)
        ).fetchone()
    assert payload["data"]["status"] == "FAILED"
    assert "internal" not in json.dumps(payload)
