"""Migrations, schema rules and Postgres-only behaviour of the repository."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.adapters.postgres.migrate import applied_migrations, available_migrations, migrate
from ingest_core.errors import StoreUnavailable
from ingest_core.model import Attachment, MessageStatus, NewMessage, RecordKind


def test_durability_settings_are_on(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            row = conn.execute(f"SHOW {setting}").fetchone()
            assert row == ("on",), setting


def test_migrate_applies_everything_once(pg_empty_database_url: str) -> None:
    versions = [version for version, _ in available_migrations()]
    assert versions[0] == "0001_initial"
    assert applied_migrations(pg_empty_database_url) == []
    assert migrate(pg_empty_database_url) == versions
    assert migrate(pg_empty_database_url) == []
    assert applied_migrations(pg_empty_database_url) == versions


def test_concurrent_migrations_from_two_processes(pg_empty_database_url: str) -> None:
    script = (
        "import sys, json\n"
        "from ingest_core.adapters.postgres.migrate import migrate\n"
        "print(json.dumps(migrate(sys.argv[1])))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, pg_empty_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    applied = sorted(out.strip() for out, _ in outputs)
    versions = [version for version, _ in available_migrations()]
    # One process did the work, the other waited on the lock and found nothing to do.
    assert applied == sorted(["[]", json.dumps(versions)])
    assert applied_migrations(pg_empty_database_url) == versions


def test_migration_files_are_numbered_without_gaps() -> None:
    numbers = [int(version[:4]) for version, _ in available_migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_status_check_rejects_unknown_states(pg_pool) -> None:
    org = TenantAdmin(pg_pool).add("acme", "Acme")
    repo = PostgresMessageRepository(pg_pool)
    recorded = repo.record_received(_message(org.id))
    with pytest.raises(psycopg.errors.CheckViolation), pg_pool.connection() as conn:
        conn.execute("UPDATE inbound_message SET status = 'LOST' WHERE id = %s", (recorded.id,))
    with pg_pool.connection() as conn:
        conn.execute(
            "UPDATE inbound_message SET status = 'QUARANTINED' WHERE id = %s", (recorded.id,)
        )


def test_attachment_part_paths_are_unique_per_message(pg_pool) -> None:
    org = TenantAdmin(pg_pool).add("acme", "Acme")
    message_id = PostgresMessageRepository(pg_pool).record_received(_message(org.id)).id
    insert = (
        "INSERT INTO inbound_attachment (inbound_message_id, org_id, part_path, content_type,"
        " size_bytes, sha256, object_key) VALUES (%s, %s, '1', 'text/plain', 1, 'x', 'k')"
    )
    with pg_pool.connection() as conn:
        conn.execute(insert, (message_id, org.id))
    with pytest.raises(psycopg.errors.UniqueViolation), pg_pool.connection() as conn:
        conn.execute(insert, (message_id, org.id))


def test_message_needs_an_existing_tenant(pg_pool) -> None:
    from ingest_core.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        PostgresMessageRepository(pg_pool).record_received(_message(uuid.uuid4()))


def test_unstorable_text_is_made_storable(pg_pool) -> None:
    """NUL and lone surrogates (from surrogateescape decoding) cannot go into a
    Postgres text column; they must not turn a message into a permanent error."""
    org = TenantAdmin(pg_pool).add("acme", "Acme")
    repo = PostgresMessageRepository(pg_pool)
    recorded = repo.record_received(
        _message(org.id, subject="PO\x00 4711 \udcff", from_header="a\udce9b <x@y>")
    )
    assert recorded.kind is RecordKind.CREATED
    stored = repo.get(org.id, recorded.id)
    assert stored is not None
    assert stored.subject == "PO\ufffd 4711 \ufffd"
    assert stored.from_header == "a\ufffdb <x@y>"


def test_record_received_is_one_statement_when_new(pg_pool) -> None:
    """The common path commits exactly one row per call, with its defaults."""
    org = TenantAdmin(pg_pool).add("acme", "Acme")
    PostgresMessageRepository(pg_pool).record_received(_message(org.id))
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*), min(source), min(status), min(attempts) FROM inbound_message"
        ).fetchone()
    assert row == (1, "EMAIL", "RECEIVED", 0)


def test_attachments_have_a_nullable_detected_content_type(pg_pool) -> None:
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_name = 'inbound_attachment' AND column_name = 'detected_content_type'"
        ).fetchone()
    assert row == ("text", "YES", None)


def test_finish_again_keeps_the_id_of_a_surviving_part(pg_pool) -> None:
    repo, org_id, message_id = _claimed(pg_pool)
    repo.finish(message_id, [_attachment("2"), _attachment("3")], "parser-1")
    before = _attachment_rows(pg_pool, message_id)

    changed = _attachment("2", filename="renamed.pdf", sha256="d" * 64, detected_type="x/y")
    repo.finish(message_id, [changed, _attachment("4")], "parser-2")

    after = _attachment_rows(pg_pool, message_id)
    assert sorted(after) == ["2", "4"]
    assert after["2"][0] == before["2"][0]
    assert after["2"][1:] == ("renamed.pdf", "d" * 64, "x/y", org_id)
    assert after["4"][0] not in {row[0] for row in before.values()}


def test_a_failed_finish_changes_nothing(pg_pool) -> None:
    """Upsert, delete and the PROCESSED mark are one transaction."""
    repo, org_id, message_id = _claimed(pg_pool)
    repo.finish(message_id, [_attachment("2"), _attachment("3")], "parser-1")
    before = _attachment_rows(pg_pool, message_id)

    refused = _attachment("5", size_bytes=-1)  # the CHECK fails after "2" was upserted
    with pytest.raises(StoreUnavailable):
        repo.finish(message_id, [_attachment("2", filename="new.pdf"), refused], "parser-2")

    assert _attachment_rows(pg_pool, message_id) == before
    stored = repo.get(org_id, message_id)
    assert stored is not None
    assert stored.parser_version == "parser-1"


def test_a_concurrent_finish_waits_and_then_replaces_the_whole_manifest(pg_pool) -> None:
    """A finish that commits while another is under way does not leave rows
    behind that the later manifest lacks: the later one waits on the message row,
    then sees (and removes) the earlier one's parts."""
    repo, org_id, message_id = _claimed(pg_pool)
    errors: list[BaseException] = []

    def later_finish() -> None:
        try:
            repo.finish(message_id, [_attachment("2")], "parser-2")
        except BaseException as exc:  # reported below
            errors.append(exc)

    with pg_pool.connection() as earlier:
        # What an earlier finish holds: the row lock of a plain UPDATE (weaker than
        # FOR UPDATE: it does not block the foreign-key check of an insert).
        earlier.execute(
            "UPDATE inbound_message SET parser_version = 'parser-1' WHERE id = %s", (message_id,)
        )
        earlier.execute(
            "INSERT INTO inbound_attachment (inbound_message_id, org_id, part_path, content_type,"
            " size_bytes, sha256, object_key) VALUES (%s, %s, '9', 'text/plain', 1, 'x', 'k')",
            (message_id, org_id),
        )
        thread = threading.Thread(target=later_finish)
        thread.start()
        _wait_for_a_lock_wait(pg_pool)
    thread.join(timeout=30)

    assert errors == []
    assert sorted(_attachment_rows(pg_pool, message_id)) == ["2"]
    stored = repo.get(org_id, message_id)
    assert stored is not None
    assert (stored.status, stored.parser_version) == (MessageStatus.PROCESSED, "parser-2")


def _claimed(pool) -> tuple[PostgresMessageRepository, uuid.UUID, uuid.UUID]:
    org = TenantAdmin(pool).add(f"t-{uuid.uuid4().hex[:12]}", "Tenant")
    repo = PostgresMessageRepository(pool)
    message_id = repo.record_received(_message(org.id)).id
    assert repo.claim(message_id, 3600.0) is not None
    return repo, org.id, message_id


def _attachment(part_path: str, **changes: object) -> Attachment:
    fields: dict[str, object] = {
        "part_path": part_path,
        "content_type": "application/pdf",
        "disposition": "attachment",
        "filename": "po.pdf",
        "size_bytes": 99,
        "sha256": "c" * 64,
        "object_key": f"att/{part_path}",
    }
    fields.update(changes)
    return Attachment(**fields)  # type: ignore[arg-type]


def _attachment_rows(pool, message_id: uuid.UUID) -> dict[str, tuple[object, ...]]:
    """part_path -> (id, filename, sha256, detected_content_type, org_id)."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT part_path, id, filename, sha256, detected_content_type, org_id"
            " FROM inbound_attachment WHERE inbound_message_id = %s",
            (message_id,),
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def _wait_for_a_lock_wait(pool, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
        if row and row[0] > 0:
            return
        time.sleep(0.01)
    raise AssertionError("the second finish never waited on the message row")


def _message(org_id: uuid.UUID, **changes: object) -> NewMessage:
    fields: dict[str, object] = {
        "org_id": org_id,
        "source_message_id": "m@example.com",
        "message_id_header": "<m@example.com>",
        "sha256": "a" * 64,
        "content_sha256": "b" * 64,
        "size_bytes": 10,
        "raw_object_key": f"raw/{org_id}/{'a' * 64}.eml",
        "envelope_from": "s@example.net",
        "envelope_recipient": "orders+acme@orders.localhost",
        "subject": "PO",
        "from_header": "s@example.net",
        "received_at": datetime.now(UTC),
    }
    fields.update(changes)
    return NewMessage(**fields)  # type: ignore[arg-type]
