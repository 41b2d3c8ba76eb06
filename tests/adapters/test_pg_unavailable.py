"""A database that is gone, hanging or slow gives StoreUnavailable in bounded
time, and the pool recovers when the server comes back.

The pytest-timeout marks are the bound: a call that hangs fails the test."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
import pytest

from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.adapters.postgres.common import connection_options, database_errors, open_pool
from ingest_core.adapters.postgres.embedded import EmbeddedPostgres
from ingest_core.adapters.postgres.migrate import migrate
from ingest_core.errors import StoreUnavailable
from ingest_core.model import MessageStatus, NewMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)


def _new_message(org_id: uuid.UUID) -> NewMessage:
    return NewMessage(
        org_id=org_id,
        source_message_id=f"{uuid.uuid4()}@example.com",
        message_id_header=None,
        sha256="a" * 64,
        content_sha256="b" * 64,
        size_bytes=1,
        raw_object_key="raw/x/y.eml",
        envelope_from="s@example.net",
        envelope_recipient="orders+acme@orders.localhost",
        subject=None,
        from_header=None,
        received_at=datetime.now(UTC),
    )


def _every_call(repo: PostgresMessageRepository) -> list[Callable[[], object]]:
    some = uuid.uuid4()
    now = datetime.now(UTC)
    return [
        lambda: repo.record_received(_new_message(some)),
        lambda: repo.get(some, some),
        lambda: repo.claim(some, 1.0),
        lambda: repo.finish(some, [], "p"),
        lambda: repo.fail(some, "e", final=False),
        lambda: repo.list_attachments(some, some),
        lambda: repo.stale(now, now),
        lambda: repo.reset_for_replay(some),
        lambda: repo.ids_with_status(MessageStatus.RECEIVED, None),
    ]


def test_no_server_at_the_socket(tmp_path: Path) -> None:
    pool = open_pool(f"postgresql://postgres@/postgres?host={tmp_path}", timeout_s=0.3)
    try:
        repo = PostgresMessageRepository(pool)
        for call in _every_call(repo):
            with pytest.raises(StoreUnavailable):
                call()
    finally:
        pool.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port whose listener completes handshakes and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_server_that_never_answers_hits_connect_timeout(silent_server: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/postgres"
    with pytest.raises(StoreUnavailable):
        migrate(url, timeout_s=2.0)


def test_server_that_never_answers_hits_the_pool_timeout(silent_server: int) -> None:
    pool = open_pool(f"postgresql://postgres@127.0.0.1:{silent_server}/postgres", timeout_s=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            PostgresMessageRepository(pool).get(uuid.uuid4(), uuid.uuid4())
    finally:
        pool.close()


def test_slow_statement_hits_statement_timeout(pg_migrated_url: str) -> None:
    pool = open_pool(pg_migrated_url, timeout_s=1.0, name="slow")
    try:
        with pool.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)
        with (
            pytest.raises(StoreUnavailable) as caught,
            database_errors("sleep"),
            pool.connection() as conn,
        ):
            conn.execute("SELECT pg_sleep(30)")
        assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
    finally:
        pool.close()


def test_connection_options_scale_with_the_budget() -> None:
    options = connection_options(60.0)
    assert options["connect_timeout"] == 15
    assert "statement_timeout=60000" in options["options"]
    assert (options["keepalives"], options["keepalives_idle"]) == (1, 15)
    assert options["keepalives_idle"] + options["keepalives_interval"] * 3 <= 60
    assert options["tcp_user_timeout"] == 30000
    short = connection_options(0.5)
    assert short["connect_timeout"] == 2
    assert short["keepalives_interval"] >= 1
    kept = connection_options(10.0, "postgresql://h/db?options=-c%20search_path%3Dx")
    assert kept["options"].startswith("-c search_path=x ")


def test_stopped_server_then_restarted(make_private_dir) -> None:
    with make_private_dir("pg-restart") as folder:
        server = EmbeddedPostgres(folder / "pg")
        url = server.start()
        migrate(url)
        pool = open_pool(url, timeout_s=2.0, name="restart")
        try:
            org = TenantAdmin(pool).add("acme", "Acme")
            repo = PostgresMessageRepository(pool)
            first = repo.record_received(_new_message(org.id))

            server.stop()
            with pytest.raises(StoreUnavailable):
                repo.get(org.id, first.id)

            server.start()
            # Committed before the stop, readable after the restart.
            assert repo.get(org.id, first.id) is not None
        finally:
            pool.close()
            server.stop()
