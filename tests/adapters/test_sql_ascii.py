"""A database created with ``ENCODING 'SQL_ASCII'`` (what initdb chooses in a
C locale, e.g. a minimal container image): the server then converts nothing
and labels text as SQL_ASCII, which psycopg hands back as bytes unless the
client asks for UTF-8. Every connection asks, so such a database works."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingest_core.adapters.postgres.common import open_pool
from ingest_core.adapters.postgres.migrate import applied_migrations, migrate
from ingest_core.adapters.postgres.tenants import PostgresTenantDirectory, TenantAdmin
from ingest_core.bootstrap import migration_versions

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest_core.adapters.postgres.embedded import EmbeddedPostgres


@pytest.fixture
def sql_ascii_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"ascii_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    yield make_conninfo(pg_server.url, dbname=name)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_sql_ascii_database_is_migrated_and_read_as_text(sql_ascii_url: str) -> None:
    migrate(sql_ascii_url)
    assert applied_migrations(sql_ascii_url) == list(migration_versions())
    pool = open_pool(sql_ascii_url, timeout_s=10.0, name="ascii")
    try:
        TenantAdmin(pool).add("acme", "Acme Übersee GmbH")
        tenant = PostgresTenantDirectory(pool).resolve("acme")
        assert tenant is not None
        assert tenant.name == "Acme Übersee GmbH"
    finally:
        pool.close()
