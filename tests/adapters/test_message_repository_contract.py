"""One MessageRepository contract, run against the in-memory fake and Postgres."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.memory import MemoryMessageRepository
from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.model import Attachment, MessageStatus, NewMessage, RecordKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.ports import MessageRepository

LONG_LEASE = 3600.0


@dataclass
class Harness:
    repo: MessageRepository
    new_tenant: Callable[[], uuid.UUID]


@pytest.fixture(params=["memory", "postgres"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return Harness(MemoryMessageRepository(), uuid.uuid4)
    pool = request.getfixturevalue("pg_pool")
    admin = TenantAdmin(pool)
    return Harness(
        PostgresMessageRepository(pool),
        lambda: admin.add(f"t-{uuid.uuid4().hex[:12]}", "Tenant").id,
    )


def message(
    org_id: uuid.UUID, smid: str = "abc@example.com", content: str = "c1", **kw
) -> NewMessage:
    sha = uuid.uuid5(uuid.NAMESPACE_URL, content).hex * 2
    fields = {
        "org_id": org_id,
        "source_message_id": smid,
        "message_id_header": f"<{smid}>",
        "sha256": sha,
        "content_sha256": sha,
        "size_bytes": 1234,
        "raw_object_key": f"raw/{org_id}/{sha}.eml",
        "envelope_from": "buyer@example.net",
        "envelope_recipient": "orders+acme@orders.localhost",
        "subject": "PO 4711",
        "from_header": "Buyer <buyer@example.net>",
        "received_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "client_address": "192.0.2.7",
        "client_helo": "mx.example.net",
        "postfix_queue_id": "4ABCD1234",
    }
    fields.update(kw)
    return NewMessage(**fields)


def attachment(part_path: str, name: str = "po.pdf", **kw) -> Attachment:
    fields = {
        "part_path": part_path,
        "content_type": "application/pdf",
        "disposition": "attachment",
        "filename": name,
        "size_bytes": 99,
        "sha256": "ab" * 32,
        "object_key": f"att/{part_path}",
        "notes": (),
    }
    fields.update(kw)
    return Attachment(**fields)


def test_record_creates_a_received_row_with_every_field(harness: Harness) -> None:
    org = harness.new_tenant()
    new = message(org)
    recorded = harness.repo.record_received(new)
    assert recorded.kind is RecordKind.CREATED
    stored = harness.repo.get(org, recorded.id)
    assert stored is not None
    for name in (
        "org_id", "source_message_id", "sha256", "content_sha256", "size_bytes",
        "raw_object_key", "envelope_from", "envelope_recipient", "subject", "from_header",
        "received_at", "client_address", "client_helo", "postfix_queue_id",
    ):  # fmt: skip
        assert getattr(stored, name) == getattr(new, name), name
    assert stored.status is MessageStatus.RECEIVED
    assert stored.attempts == 0
    assert (stored.claimed_at, stored.last_error, stored.processed_at) == (None, None, None)


def test_same_content_again_is_a_duplicate_of_the_first_row(harness: Harness) -> None:
    org = harness.new_tenant()
    first = harness.repo.record_received(message(org))
    # A redelivery differs in its exact bytes (another Received: line), not in content.
    again = harness.repo.record_received(message(org, sha256="f" * 64))
    assert again.kind is RecordKind.DUPLICATE
    assert again.id == first.id
    assert harness.repo.ids_with_status(MessageStatus.RECEIVED, org) == [first.id]


def test_reused_message_id_with_other_content_is_stored_as_its_own_row(harness: Harness) -> None:
    org = harness.new_tenant()
    first = harness.repo.record_received(message(org, content="one"))
    other = message(org, content="two")
    conflict = harness.repo.record_received(other)
    assert conflict.kind is RecordKind.CONFLICT_STORED
    assert conflict.id != first.id
    stored = harness.repo.get(org, conflict.id)
    assert stored is not None
    assert stored.source_message_id == f"abc@example.com#{other.content_sha256[:16]}"
    assert stored.content_sha256 == other.content_sha256

    # The conflicting copy delivered again is a duplicate of the conflict row.
    again = harness.repo.record_received(message(org, content="two"))
    assert (again.kind, again.id) == (RecordKind.DUPLICATE, conflict.id)
    # A third content gets a third row; the original stays a duplicate target.
    third = harness.repo.record_received(message(org, content="three"))
    assert third.kind is RecordKind.CONFLICT_STORED
    assert len({first.id, conflict.id, third.id}) == 3
    assert harness.repo.record_received(message(org, content="one")).id == first.id


def test_two_tenants_get_two_rows_for_one_message(harness: Harness) -> None:
    acme, globex = harness.new_tenant(), harness.new_tenant()
    a = harness.repo.record_received(message(acme))
    g = harness.repo.record_received(message(globex))
    assert a.kind is g.kind is RecordKind.CREATED
    assert a.id != g.id


def test_reads_never_cross_tenants(harness: Harness) -> None:
    acme, globex = harness.new_tenant(), harness.new_tenant()
    recorded = harness.repo.record_received(message(acme))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.finish(recorded.id, [attachment("2")], "p1")

    assert harness.repo.get(globex, recorded.id) is None
    assert harness.repo.list_attachments(globex, recorded.id) == []
    assert harness.repo.ids_with_status(MessageStatus.PROCESSED, globex) == []
    assert harness.repo.get(acme, recorded.id) is not None
    assert [a.part_path for a in harness.repo.list_attachments(acme, recorded.id)] == ["2"]
    assert harness.repo.ids_with_status(MessageStatus.PROCESSED, None) == [recorded.id]


def test_unknown_ids_are_absent(harness: Harness) -> None:
    org = harness.new_tenant()
    missing = uuid.uuid4()
    assert harness.repo.get(org, missing) is None
    assert harness.repo.claim(missing, LONG_LEASE) is None
    assert harness.repo.list_attachments(org, missing) == []
    assert harness.repo.reset_for_replay(missing) is False


def test_claim_moves_to_processing_once(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    claimed = harness.repo.claim(recorded.id, LONG_LEASE)
    assert claimed is not None
    assert claimed.status is MessageStatus.PROCESSING
    assert claimed.attempts == 1
    assert claimed.claimed_at is not None
    assert harness.repo.claim(recorded.id, LONG_LEASE) is None
    assert harness.repo.get(org, recorded.id) == claimed


def test_concurrent_claims_have_one_winner_per_message(harness: Harness) -> None:
    org = harness.new_tenant()
    ids = [
        harness.repo.record_received(message(org, smid=f"m{i}@example.com")).id for i in range(12)
    ]
    wins: dict[uuid.UUID, int] = dict.fromkeys(ids, 0)
    barrier = threading.Barrier(2)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            for message_id in ids:
                barrier.wait()
                if harness.repo.claim(message_id, LONG_LEASE) is not None:
                    with lock:
                        wins[message_id] += 1
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert wins == dict.fromkeys(ids, 1)


def test_expired_lease_can_be_claimed_again(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    first = harness.repo.claim(recorded.id, LONG_LEASE)
    assert first is not None
    time.sleep(0.05)  # the lease below is shorter than this pause, however slow the machine
    second = harness.repo.claim(recorded.id, 0.01)
    assert second is not None
    assert second.attempts == 2
    assert second.claimed_at is not None
    assert first.claimed_at is not None
    assert second.claimed_at > first.claimed_at


def _claimed(harness: Harness, org: uuid.UUID, **kw) -> uuid.UUID:
    recorded = harness.repo.record_received(message(org, **kw))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    return recorded.id


def test_finish_records_attachments_once_and_marks_processed(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "temporary trouble", final=False)
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None

    first = [attachment("2"), attachment("10", notes=("filename repaired",)), attachment("1.1")]
    harness.repo.finish(recorded.id, first, "parser-1")
    # A second run (e.g. after a lost acknowledgement) changes nothing.
    harness.repo.finish(recorded.id, first, "parser-1")

    stored = harness.repo.get(org, recorded.id)
    assert stored is not None
    assert stored.status is MessageStatus.PROCESSED
    assert stored.parser_version == "parser-1"
    assert stored.processed_at is not None
    assert stored.last_error is None
    assert stored.attempts == 2
    listed = harness.repo.list_attachments(org, recorded.id)
    assert [a.part_path for a in listed] == sorted(["2", "10", "1.1"])
    by_path = {a.part_path: a for a in listed}
    assert by_path["2"] == first[0]
    assert by_path["10"] == first[1]
    assert by_path["1.1"] == first[2]


def test_finish_again_replaces_the_manifest(harness: Harness) -> None:
    """A re-extraction (replay with a newer parser) leaves exactly its own
    manifest: changed parts updated, vanished parts gone, new parts added."""
    org = harness.new_tenant()
    message_id = _claimed(harness, org)
    harness.repo.finish(
        message_id,
        [
            attachment("2", name="scan.bin", content_type="application/octet-stream"),
            attachment("3", name="lines.csv", content_type="text/csv"),
            attachment("4", name="gone.txt", content_type="text/plain"),
        ],
        "parser-1",
    )
    assert harness.repo.reset_for_replay(message_id)
    assert harness.repo.claim(message_id, LONG_LEASE) is not None

    second = [
        attachment(
            "2",
            name="po-4711.pdf",
            content_type="application/pdf",
            detected_type="application/pdf",
            sha256="cd" * 32,
            size_bytes=1234,
            object_key="att/other",
            disposition="inline",
            notes=("filename repaired",),
        ),
        attachment("3", name="lines.csv", content_type="text/csv"),
        attachment("5", name="new.xml", content_type="application/xml", disposition=None),
    ]
    harness.repo.finish(message_id, second, "parser-2")

    assert harness.repo.list_attachments(org, message_id) == sorted(
        second, key=lambda a: a.part_path
    )
    stored = harness.repo.get(org, message_id)
    assert stored is not None
    assert (stored.status, stored.parser_version) == (MessageStatus.PROCESSED, "parser-2")


def test_finish_without_attachments_clears_the_manifest(harness: Harness) -> None:
    org = harness.new_tenant()
    message_id = _claimed(harness, org)
    harness.repo.finish(message_id, [attachment("2"), attachment("3")], "parser-1")
    harness.repo.finish(message_id, [], "parser-2")
    assert harness.repo.list_attachments(org, message_id) == []


def test_finish_replaces_only_that_messages_manifest(harness: Harness) -> None:
    org = harness.new_tenant()
    one = _claimed(harness, org, smid="one@example.com")
    two = _claimed(harness, org, smid="two@example.com")
    harness.repo.finish(one, [attachment("2")], "parser-1")
    harness.repo.finish(two, [attachment("2"), attachment("3")], "parser-1")
    harness.repo.finish(one, [attachment("4")], "parser-2")
    assert [a.part_path for a in harness.repo.list_attachments(org, one)] == ["4"]
    assert [a.part_path for a in harness.repo.list_attachments(org, two)] == ["2", "3"]


def test_detected_type_round_trips(harness: Harness) -> None:
    org = harness.new_tenant()
    message_id = _claimed(harness, org)
    sent = [
        attachment("2", content_type="application/octet-stream", detected_type="application/pdf"),
        attachment("3", content_type="text/plain"),
    ]
    harness.repo.finish(message_id, sent, "parser-1")
    listed = harness.repo.list_attachments(org, message_id)
    assert [(a.content_type, a.detected_type) for a in listed] == [
        ("application/octet-stream", "application/pdf"),
        ("text/plain", None),
    ]
    assert listed == sent


def test_fail_retries_then_fails_for_good(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "parser crashed", final=False)
    retry = harness.repo.get(org, recorded.id)
    assert retry is not None
    assert (retry.status, retry.last_error, retry.claimed_at) == (
        MessageStatus.RECEIVED, "parser crashed", None,
    )  # fmt: skip

    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "parser crashed again", final=True)
    failed = harness.repo.get(org, recorded.id)
    assert failed is not None
    assert (failed.status, failed.last_error, failed.attempts) == (
        MessageStatus.FAILED, "parser crashed again", 2,
    )  # fmt: skip
    assert harness.repo.claim(recorded.id, 0.0) is None
    assert harness.repo.ids_with_status(MessageStatus.FAILED, org) == [recorded.id]


def test_replay_resets_a_failed_message(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "bad", final=True)
    assert harness.repo.reset_for_replay(recorded.id) is True
    replayed = harness.repo.get(org, recorded.id)
    assert replayed is not None
    assert (replayed.status, replayed.attempts, replayed.claimed_at) == (
        MessageStatus.RECEIVED, 0, None,
    )  # fmt: skip
    claimed = harness.repo.claim(recorded.id, LONG_LEASE)
    assert claimed is not None
    assert claimed.attempts == 1


def test_stale_finds_old_received_and_abandoned_processing(harness: Harness) -> None:
    org = harness.new_tenant()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    new = datetime.now(UTC) + timedelta(days=1)
    old_received = harness.repo.record_received(message(org, smid="old", received_at=old)).id
    fresh_received = harness.repo.record_received(message(org, smid="new", received_at=new)).id
    processing = harness.repo.record_received(message(org, smid="p", received_at=old)).id
    processed = harness.repo.record_received(message(org, smid="done", received_at=old)).id
    assert harness.repo.claim(processing, LONG_LEASE) is not None
    assert harness.repo.claim(processed, LONG_LEASE) is not None
    harness.repo.finish(processed, [], "p1")

    cutoff = datetime(2021, 1, 1, tzinfo=UTC)
    # Claims are "now": a bound far in the past keeps them, one far ahead sweeps them.
    assert set(harness.repo.stale(cutoff, cutoff)) == {old_received}
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert set(harness.repo.stale(cutoff, tomorrow)) == {old_received, processing}
    assert fresh_received not in harness.repo.stale(tomorrow - timedelta(hours=1), cutoff)


def test_a_pending_retry_keeps_the_row_from_the_sweep_until_it_is_due(harness: Harness) -> None:
    org = harness.new_tenant()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    recorded = harness.repo.record_received(message(org, received_at=old))
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "store unavailable", final=False, retry_in_s=3600)
    now = datetime.now(UTC)
    # Received long ago, but its retry is an hour away: not the sweep's yet.
    assert recorded.id not in harness.repo.stale(now, now)
    assert recorded.id in harness.repo.stale(now + timedelta(hours=2), now)
    # The scheduled run claims it when it comes (the claim does not wait).
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.fail(recorded.id, "store unavailable", final=False, retry_in_s=0)
    assert recorded.id in harness.repo.stale(now + timedelta(seconds=5), now)
    # A replay starts afresh: only received_at counts again.
    harness.repo.fail(recorded.id, "store unavailable", final=False, retry_in_s=3600)
    assert harness.repo.reset_for_replay(recorded.id)
    assert recorded.id in harness.repo.stale(datetime.now(UTC), now)


def test_ids_with_status_filters_by_tenant(harness: Harness) -> None:
    acme, globex = harness.new_tenant(), harness.new_tenant()
    a1 = harness.repo.record_received(message(acme, smid="1")).id
    a2 = harness.repo.record_received(message(acme, smid="2")).id
    g1 = harness.repo.record_received(message(globex, smid="1")).id
    assert set(harness.repo.ids_with_status(MessageStatus.RECEIVED, acme)) == {a1, a2}
    assert set(harness.repo.ids_with_status(MessageStatus.RECEIVED, None)) == {a1, a2, g1}
    assert harness.repo.ids_with_status(MessageStatus.QUARANTINED, None) == []


def test_stored_message_is_what_claim_returned(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org, subject=None, from_header=None))
    claimed = harness.repo.claim(recorded.id, LONG_LEASE)
    assert claimed is not None
    assert claimed == harness.repo.get(org, recorded.id)
    assert claimed.subject is None
    assert claimed.from_header is None


def test_record_many_is_record_received_in_one_transaction(harness: Harness) -> None:
    org, other_org = harness.new_tenant(), harness.new_tenant()
    batch = [
        message(org, content="one"),
        message(org, content="one", sha256="e" * 64),  # the same, redelivered
        message(org, content="two"),  # Message-ID reused for other content
        message(other_org, content="one"),
        message(org, smid="another@example.com", content="x"),
    ]
    recorded = harness.repo.record_many(batch)
    assert [r.kind for r in recorded] == [
        RecordKind.CREATED,
        RecordKind.DUPLICATE,
        RecordKind.CONFLICT_STORED,
        RecordKind.CREATED,
        RecordKind.CREATED,
    ]
    assert recorded[1].id == recorded[0].id
    assert len({r.id for r in recorded}) == 4
    assert harness.repo.record_many([]) == []


def test_record_many_is_all_or_nothing_and_says_when_data_was_refused(harness: Harness) -> None:
    from ingest_core.errors import RecordRejected

    org = harness.new_tenant()
    good, bad = message(org, content="good"), message(org, smid="bad@x", size_bytes=-1)
    with pytest.raises(RecordRejected):
        harness.repo.record_many([good, bad])
    assert harness.repo.ids_with_status(MessageStatus.RECEIVED, org) == []
    assert harness.repo.record_many([good])[0].kind is RecordKind.CREATED


def _verdict(**kw):
    from ingest_core.model import AuthVerdict

    fields = {
        "spf": "softfail",
        "dkim": (("example.net", "s1", "pass"), ("evil.example", "x", "fail")),
        "dmarc": "pass",
        "dmarc_policy": "quarantine",
        "arc": "none",
        "from_domain": "example.net",
        "from_address": "buyer@example.net",
        "aligned": True,
        "temporary": False,
        "summary": "orders.localhost; dmarc=pass header.from=example.net",
    }
    fields.update(kw)
    return AuthVerdict(**fields)


def test_sender_verdict_round_trips_and_is_replaced(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    assert harness.repo.get(org, recorded.id).auth is None
    harness.repo.record_auth(recorded.id, _verdict(temporary=True, dmarc="temperror"))
    harness.repo.record_auth(recorded.id, _verdict())
    assert harness.repo.get(org, recorded.id).auth == _verdict()


def test_quarantine_and_release(harness: Harness) -> None:
    org = harness.new_tenant()
    recorded = harness.repo.record_received(message(org))
    assert not harness.repo.release(recorded.id)  # RECEIVED is not quarantined
    harness.repo.quarantine(recorded.id, "not claimed: ignored")
    assert harness.repo.get(org, recorded.id).status is MessageStatus.RECEIVED
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
    harness.repo.quarantine(recorded.id, "DMARC fail for example.net")
    row = harness.repo.get(org, recorded.id)
    assert (row.status, row.quarantine_reason, row.claimed_at) == (
        MessageStatus.QUARANTINED,
        "DMARC fail for example.net",
        None,
    )
    assert harness.repo.claim(recorded.id, 0.0) is None  # a held message is not claimable
    assert recorded.id not in harness.repo.stale(
        datetime.now(UTC) + timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
    )
    assert harness.repo.release(recorded.id)
    row = harness.repo.get(org, recorded.id)
    assert (row.status, row.attempts) == (MessageStatus.RECEIVED, 0)
    assert row.released_at is not None
    assert not harness.repo.release(recorded.id)
    assert harness.repo.claim(recorded.id, LONG_LEASE) is not None
