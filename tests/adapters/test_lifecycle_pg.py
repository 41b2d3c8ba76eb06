"""Retention, legal holds and erasure on real Postgres, with the local folder
store and S3 (moto server): rows go first, an object goes only when no row of
its tenant references it, and the two reuse races are closed by the database."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore
from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.adapters.postgres import health as pg_health
from ingest_core.adapters.postgres.lifecycle import PostgresLifecycle
from ingest_core.errors import RecordRejected, StoreUnavailable
from ingest_core.lifecycle import (
    PurgeConfig,
    PurgeReport,
    collect_orphans,
    purge,
    remove_messages,
)
from ingest_core.model import Attachment, NewMessage
from ingest_core.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.adapters.postgres.common import Pool
    from ingest_core.ports import BlobStore


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return S3ObjectStore.from_env(
        request.getfixturevalue("s3_bucket_url"),
        environ=request.getfixturevalue("moto_env"),
        timeout_s=30.0,
    )


@dataclass
class World:
    pool: Pool
    repo: PostgresMessageRepository
    admin: TenantAdmin
    life: PostgresLifecycle
    objects: BlobStore

    def tenant(self, slug: str) -> uuid.UUID:
        return self.admin.add(slug, slug).id

    def message(
        self,
        org: uuid.UUID,
        *,
        age_days: float,
        body: bytes = b"PO 4711",
        sender: str = "buyer@example.net",
        from_header: str = "Buyer <buyer@example.net>",
        attachments: tuple[bytes, ...] = (),
        batch: bool = False,
    ) -> uuid.UUID:
        """A stored message as accept and extraction leave it: objects first, then
        rows (``batch``: through record_many, as the accept path records)."""
        sha = uuid.uuid5(uuid.NAMESPACE_URL, body.decode()).hex * 2
        key = f"raw/{org}/{sha}.eml"
        self.objects.put(key, Spool.from_bytes(body))
        record = self.repo.record_received
        if batch:
            record = lambda new: self.repo.record_many([new])[0]  # noqa: E731
        recorded = record(
            NewMessage(
                org_id=org,
                source_message_id=f"{uuid.uuid4()}@example.net",
                message_id_header=None,
                sha256=sha,
                content_sha256=uuid.uuid4().hex * 2,
                size_bytes=len(body),
                raw_object_key=key,
                envelope_from=sender,
                envelope_recipient="orders+acme@orders.localhost",
                subject="PO",
                from_header=from_header,
                received_at=datetime.now(UTC) - timedelta(days=age_days),
                client_address=None,
                client_helo=None,
                postfix_queue_id=None,
            )
        )
        if attachments:
            assert self.repo.claim(recorded.id, 3600.0) is not None
            rows = []
            for index, data in enumerate(attachments):
                att_key = f"attachments/{org}/{uuid.uuid5(uuid.NAMESPACE_URL, data.decode()).hex}"
                self.objects.put(att_key, Spool.from_bytes(data))
                rows.append(attachment(f"{index + 2}", att_key, len(data)))
            self.repo.finish(recorded.id, rows, "test")
        return recorded.id

    def keys(self) -> set[str]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT raw_object_key FROM inbound_message"
                " UNION SELECT object_key FROM inbound_attachment"
            ).fetchall()
        return {row[0] for row in rows}

    def message_ids(self) -> set[uuid.UUID]:
        with self.pool.connection() as conn:
            return {row[0] for row in conn.execute("SELECT id FROM inbound_message").fetchall()}

    def nothing_dangles(self) -> None:
        missing = [key for key in self.keys() if not self.objects.exists(key)]
        assert missing == []


def attachment(part: str, key: str, size: int) -> Attachment:
    return Attachment(
        part_path=part,
        content_type="application/pdf",
        disposition="attachment",
        filename="po.pdf",
        size_bytes=size,
        sha256="ab" * 32,
        object_key=key,
        notes=(),
    )


@pytest.fixture
def world(pg_pool: Pool, objects: BlobStore) -> World:
    return World(
        pg_pool,
        PostgresMessageRepository(pg_pool),
        TenantAdmin(pg_pool),
        PostgresLifecycle(pg_pool),
        objects,
    )


def run(world: World, default_days: int | None = None, **kw: object) -> PurgeReport:
    return purge(world.life, world.objects, PurgeConfig(default_days=default_days, **kw))  # type: ignore[arg-type]


def test_retention_boundary_per_tenant_default_and_off(world: World) -> None:
    short, inherit, keep = world.tenant("short"), world.tenant("inherit"), world.tenant("keep")
    world.life.set_retention("short", 30)
    world.life.set_retention("keep", None, off=True)
    old = world.message(short, age_days=30.01, body=b"old", attachments=(b"old pdf",))
    young = world.message(short, age_days=29.99, body=b"young")
    inherited_old = world.message(inherit, age_days=91, body=b"inh old")
    inherited_young = world.message(inherit, age_days=89, body=b"inh young")
    kept = world.message(keep, age_days=1000, body=b"kept")
    old_keys = {f"raw/{short}/{uuid.uuid5(uuid.NAMESPACE_URL, 'old').hex * 2}.eml"}

    report = run(world, default_days=90)

    assert world.message_ids() == {young, inherited_young, kept}
    assert old not in world.message_ids()
    assert inherited_old not in world.message_ids()
    assert (report.messages, report.attachments, report.objects) == (2, 1, 3)
    assert report.bytes == len(b"old") + len(b"old pdf") + len(b"inh old")
    assert report.by_tenant == {"short": (1, 10), "inherit": (1, 7)}
    assert not any(world.objects.exists(key) for key in old_keys)
    world.nothing_dangles()
    assert run(world, default_days=90).messages == 0  # idempotent


def test_a_purged_messages_events_and_deliveries_go_with_it(world: World) -> None:
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    old = world.message(org, age_days=5, body=b"old")
    with world.pool.connection() as conn:
        conn.execute(
            "INSERT INTO event (org_id, message_id, type, payload)"
            " VALUES (%s, %s, 'message.received', '{}')",
            (org, old),
        )
    run(world)
    with world.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM event WHERE message_id = %s AND type <> 'message.deleted'",
            (old,),
        ).fetchone()
    assert row == (0,)


def endpoint(world: World, org: uuid.UUID, types: list[str]) -> str:
    endpoint_id = "ep_" + uuid.uuid4().hex[:16]
    with world.pool.connection() as conn:
        conn.execute(
            "INSERT INTO webhook_endpoint (id, org_id, url, event_types, secret)"
            " VALUES (%s, %s, 'https://orders.example/hook', %s, 'sealed')",
            (endpoint_id, org, types),
        )
    return endpoint_id


def deleted_events(world: World) -> list[tuple[object, ...]]:
    with world.pool.connection() as conn:
        return conn.execute(
            "SELECT e.message_id, e.payload, array_agg(d.endpoint_id ORDER BY d.endpoint_id)"
            " FILTER (WHERE d.id IS NOT NULL)"
            " FROM event e LEFT JOIN webhook_delivery d ON d.event_id = e.id"
            " WHERE e.type = 'message.deleted' GROUP BY e.id ORDER BY e.created_at"
        ).fetchall()


def test_retention_sends_message_deleted_to_subscribed_endpoints_only(world: World) -> None:
    org, other = world.tenant("acme"), world.tenant("other")
    world.life.set_retention("acme", 1)
    every = endpoint(world, org, [])
    subscribed = endpoint(world, org, ["message.deleted"])
    endpoint(world, org, ["message.received"])
    endpoint(world, other, [])
    old = world.message(org, age_days=5, body=b"old", batch=True)  # with its received event
    with world.pool.connection() as conn:
        received = conn.execute(
            "SELECT count(*) FROM webhook_delivery d JOIN event e ON e.id = d.event_id"
            " WHERE e.message_id = %s",
            (old,),
        ).fetchone()
    assert received == (2,)  # its data: to every and to message.received

    run(world)

    ((message_id, payload, endpoints),) = deleted_events(world)
    assert message_id == old
    assert endpoints == sorted([every, subscribed])
    assert payload["type"] == "message.deleted"
    assert payload["data"] == {"message_id": str(old), "tenant": "acme", "reason": "retention"}
    with world.pool.connection() as conn:
        left = conn.execute(
            "SELECT count(*) FROM event WHERE message_id = %s AND type <> 'message.deleted'",
            (old,),
        ).fetchone()
    assert left == (0,)  # the events carrying its data went, their deliveries by cascade


def test_erasure_sends_message_deleted_with_its_reason_and_a_held_message_none(
    world: World,
) -> None:
    org = world.tenant("acme")
    endpoint(world, org, [])
    erased = world.message(org, age_days=0, body=b"a")
    held = world.message(org, age_days=0, body=b"b")
    world.life.add_hold("acme", held, "litigation", "ops")
    report = PurgeReport()
    remove_messages(world.life, world.objects, [erased, held], 60.0, report, reason="erasure")
    assert world.message_ids() == {held}
    ((message_id, payload, _),) = deleted_events(world)
    assert message_id == erased
    assert payload["data"]["reason"] == "erasure"


def test_a_purge_records_what_its_run_removed_for_metrics(world: World) -> None:
    assert pg_health.last_purge(world.pool, 5.0) == {}
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    world.message(org, age_days=5, body=b"old", attachments=(b"old pdf",))
    run(world)
    assert pg_health.last_purge(world.pool, 5.0) == {"messages": 1, "objects": 2, "bytes": 10}
    run(world)  # the next run replaces it
    assert pg_health.last_purge(world.pool, 5.0) == {"messages": 0, "objects": 0, "bytes": 0}


def test_stored_bytes_per_tenant_count_rows_and_drop_with_a_purge(world: World) -> None:
    org, other = world.tenant("acme"), world.tenant("other")
    world.life.set_retention("acme", 1)
    world.message(org, age_days=5, body=b"12345", attachments=(b"678",))
    world.message(org, age_days=0, body=b"ab")
    assert pg_health.stored_bytes(world.pool, 5.0) == {"acme": 10, "other": 0}
    run(world)
    assert pg_health.stored_bytes(world.pool, 5.0) == {"acme": 2, "other": 0}
    assert other


def test_without_a_default_nothing_inherits_retention(world: World) -> None:
    org = world.tenant("acme")
    world.message(org, age_days=5000)
    assert run(world).messages == 0


def test_shared_object_is_kept_while_a_row_references_it(world: World) -> None:
    org = world.tenant("acme")
    world.life.set_retention("acme", 10)
    world.message(org, age_days=20, body=b"same bytes", attachments=(b"same pdf",))
    newer = world.message(org, age_days=1, body=b"same bytes", attachments=(b"same pdf",))
    report = run(world)
    assert report.messages == 1
    assert report.objects == 0
    assert report.objects_kept == 2
    assert world.message_ids() == {newer}
    world.nothing_dangles()


def test_identical_bytes_in_two_tenants_are_separate(world: World) -> None:
    gone, stays = world.tenant("gone"), world.tenant("stays")
    world.life.set_retention("gone", 1)
    world.message(gone, age_days=5, body=b"identical", attachments=(b"identical pdf",))
    kept = world.message(stays, age_days=5, body=b"identical", attachments=(b"identical pdf",))
    assert run(world).objects == 2
    assert world.message_ids() == {kept}
    world.nothing_dangles()


def test_legal_hold_on_a_tenant_or_a_message_blocks_retention(world: World) -> None:
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    one = world.message(org, age_days=5, body=b"one")
    two = world.message(org, age_days=5, body=b"two")
    tenant_hold = world.life.add_hold("acme", None, "litigation 2026-17", "alice")
    assert run(world).messages == 0
    world.life.add_hold("acme", one, "invoice dispute", "alice")
    assert world.life.remove_hold(tenant_hold.id, "bob") is not None
    assert run(world).messages == 1
    assert world.message_ids() == {one}
    selection = world.life.select("acme", message_id=one)
    assert selection.ids == ()
    assert selection.held == (one,)
    assert selection.hold_reasons == ("invoice dispute",)
    assert two not in world.message_ids()


def test_dry_run_summary_changes_nothing(world: World) -> None:
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    world.message(org, age_days=5, body=b"old one", attachments=(b"pdf",))
    before = (world.message_ids(), world.keys())
    assert world.life.expired_summary(None) == {"acme": (1, len(b"old one") + 3)}
    assert (world.message_ids(), world.keys()) == before
    world.nothing_dangles()


def test_a_marked_key_refuses_a_new_row_until_its_window_ends(world: World) -> None:
    """Race (a): purge found the object unreferenced; an identical message put
    it again (a no-op: the key exists) and inserts its row. The insert is
    refused (a 451 for the sender, who retries), so purge's delete leaves no
    row behind it; once the window is over the message is stored again."""
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    first = world.message(org, age_days=5, body=b"twin")
    removed = world.life.delete_messages([first])
    ((_, key),) = removed.keys
    assert world.life.mark_for_removal(org, key, refuse_s=1.0)
    with pytest.raises(StoreUnavailable):
        world.message(org, age_days=0, body=b"twin")  # the put skips, the row is refused
    world.objects.delete(key)
    world.life.confirm_removed(key)
    time.sleep(1.1)
    again = world.message(org, age_days=0, body=b"twin")
    assert world.message_ids() == {again}
    world.nothing_dangles()


def test_a_refused_message_is_refused_as_data_so_its_batch_neighbours_are_kept(
    world: World,
) -> None:
    """RecordRejected: the accept batch then records each message on its own,
    and only the one that reused the object being removed gets a 451."""
    org = world.tenant("acme")
    first = world.message(org, age_days=5, body=b"twin")
    ((_, key),) = world.life.delete_messages([first]).keys
    assert world.life.mark_for_removal(org, key, refuse_s=60.0)
    with pytest.raises(RecordRejected):
        world.message(org, age_days=0, body=b"twin", batch=True)


def test_a_marked_attachment_key_refuses_extractions_manifest(world: World) -> None:
    """Race (b): extraction found the attachment with exists() and skipped its
    put while purge removes it: finish() is refused and the job retried."""
    org = world.tenant("acme")
    world.life.set_retention("acme", 1)
    world.message(org, age_days=5, body=b"old", attachments=(b"shared pdf",))
    young = world.message(org, age_days=0, body=b"young")
    removed = world.life.delete_messages(world.life.expired(None, 10))
    att_key = next(key for _, key in removed.keys if key.startswith("attachments/"))
    assert world.life.mark_for_removal(org, att_key, refuse_s=60.0)
    assert world.repo.claim(young, 3600.0) is not None
    with pytest.raises(StoreUnavailable):
        world.repo.finish(young, [attachment("2", att_key, 10)], "test")
    world.nothing_dangles()


def test_a_referenced_key_is_not_marked(world: World) -> None:
    org = world.tenant("acme")
    message = world.message(org, age_days=0, body=b"live")
    with world.pool.connection() as conn:
        (key,) = conn.execute(
            "SELECT raw_object_key FROM inbound_message WHERE id = %s", (message,)
        ).fetchone() or ("",)
    assert not world.life.mark_for_removal(org, key, refuse_s=60.0)
    assert world.life.unconfirmed(10) == []


class Crash(BaseException):
    """A process killed between two steps."""


class CrashingStore:
    """The store of a purge that dies after ``deletes`` object deletions."""

    def __init__(self, inner: BlobStore, deletes: int) -> None:
        self.inner = inner
        self.left = deletes

    def delete(self, key: str) -> None:
        if self.left == 0:
            raise Crash
        self.left -= 1
        self.inner.delete(key)


@pytest.mark.parametrize("deletes", [0, 1, 3])
def test_a_purge_killed_midway_then_rerun_converges(world: World, deletes: int) -> None:
    org, other = world.tenant("acme"), world.tenant("other")
    world.life.set_retention("acme", 1)
    for index in range(6):
        world.message(org, age_days=5, body=f"old {index}".encode(), attachments=(b"pdf x",))
    live = world.message(org, age_days=0, body=b"old 0")  # shares a raw object with an old one
    theirs = world.message(other, age_days=5, body=b"old 1")
    with pytest.raises(Crash):
        purge(
            world.life,
            CrashingStore(world.objects, deletes),  # type: ignore[arg-type]
            PurgeConfig(default_days=None, batch=2),
        )
    world.nothing_dangles()  # rows went first: nothing points at a missing object
    report = run(world, batch=2)
    assert world.message_ids() == {live, theirs}
    world.nothing_dangles()
    assert world.life.unconfirmed(10) == []
    gone = [f"raw/{org}/{uuid.uuid5(uuid.NAMESPACE_URL, f'old {i}').hex * 2}.eml" for i in (2, 5)]
    assert not any(world.objects.exists(key) for key in gone)
    assert not world.objects.exists(
        f"attachments/{org}/{uuid.uuid5(uuid.NAMESPACE_URL, 'pdf x').hex}"
    )
    assert report.objects > 0  # the rerun finished what the killed run had begun


def test_erasure_by_sender_matches_envelope_and_from_case_insensitively(world: World) -> None:
    org, other = world.tenant("acme"), world.tenant("other")
    by_envelope = world.message(org, age_days=0, body=b"a", sender="Buyer@Example.NET")
    by_from = world.message(
        org, age_days=0, body=b"b", sender="bounce@esp.example", from_header="B <BUYER@example.net>"
    )
    named_only = world.message(
        org,
        age_days=0,
        body=b"c",
        sender="x@y.example",
        from_header='"buyer@example.net" <someone@else.example>',
    )
    foreign = world.message(other, age_days=0, body=b"a", sender="buyer@example.net")
    selection = world.life.select("acme", sender="buyer@example.net")
    assert set(selection.ids) == {by_envelope, by_from}
    assert selection.bytes == 2
    report = PurgeReport()
    remove_messages(world.life, world.objects, selection.ids, 60.0, report)
    assert world.message_ids() == {named_only, foreign}
    world.nothing_dangles()


def test_tenant_deletion_removes_its_rows_but_not_another_tenants(world: World) -> None:
    world.tenant("gone")
    kept = world.tenant("kept")
    world.message(kept, age_days=0, body=b"k")
    world.life.delete_tenant("gone")
    assert [t.slug for t in world.admin.list()] == ["kept"]
    assert len(world.message_ids()) == 1


def test_orphans_older_than_the_grace_period_and_unreferenced_are_collected(
    world: World,
) -> None:
    org = world.tenant("acme")
    kept = world.message(org, age_days=0, body=b"kept", attachments=(b"kept pdf",))
    orphan_raw = f"raw/{org}/{'ab' * 32}.eml"  # an accept died before its row
    orphan_att = f"attachments/{org}/{'cd' * 16}"  # extraction died before the manifest
    other = f"exports/{org}/x"  # not ours to collect
    for key in (orphan_raw, orphan_att, other):
        world.objects.put(key, Spool.from_bytes(b"orphan"))
    report = PurgeReport()
    collect_orphans(world.life, world.objects, 900.0, 100, report)
    assert report.orphans == 0  # all younger than the grace period
    collect_orphans(world.life, world.objects, 900.0, 100, report, now=time.time() + 3600)
    assert report.orphans == 2
    assert report.objects == 0  # reported apart from the retention's objects
    assert not world.objects.exists(orphan_raw)
    assert not world.objects.exists(orphan_att)
    assert world.objects.exists(other)
    assert kept in world.message_ids()
    world.nothing_dangles()


def test_a_collected_orphans_key_refuses_a_row_until_its_window_ends(world: World) -> None:
    org = world.tenant("acme")
    key = f"raw/{org}/{'ef' * 32}.eml"
    world.objects.put(key, Spool.from_bytes(b"orphan"))
    report = PurgeReport()
    collect_orphans(world.life, world.objects, 900.0, 100, report, now=time.time() + 3600)
    assert report.orphans == 1
    with world.pool.connection() as conn:
        row = conn.execute(
            "SELECT refuse_until > now() FROM object_removal WHERE object_key = %s", (key,)
        ).fetchone()
    assert row == (True,)  # an accept reusing it now is refused and retried


def test_orphan_collection_is_bounded_per_run(world: World) -> None:
    org = world.tenant("acme")
    for index in range(3):
        world.objects.put(f"raw/{org}/{index:064x}.eml", Spool.from_bytes(b"o"))
    report = PurgeReport()
    collect_orphans(world.life, world.objects, 0.0, 1, report, now=time.time() + 60)
    assert report.orphans == 1
    collect_orphans(world.life, world.objects, 0.0, 5, report, now=time.time() + 60)
    assert report.orphans == 3  # the next run goes on
