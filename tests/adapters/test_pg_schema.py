"""Migrations, schema rules and Postgres-only behaviour of the repository."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from ingest_core.adapters.pg_migrate import applied_migrations, available_migrations, migrate
from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.model import NewMessage, RecordKind


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
        "from ingest_core.adapters.pg_migrate import migrate\n"
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
