"""Schema migrations: numbered SQL files in ``ingest_core/migrations``.

Each missing file is applied in its own transaction together with its row in
``schema_migrations``, so a failed migration leaves nothing half done. A session
advisory lock serialises concurrent runs (a server and a worker starting at the
same time): the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from ingest_core.adapters.postgres.common import connect, database_errors

if TYPE_CHECKING:
    import psycopg

# Any constant works as long as every migrating process uses the same one.
_ADVISORY_LOCK_KEY = 0x1D6E57_0001
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) pairs in order; the version is the file name without ``.sql``."""
    folder = resources.files("ingest_core").joinpath("migrations")
    found = sorted(entry.name for entry in folder.iterdir() if _FILE_NAME.match(entry.name))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text("utf-8")) for name in found]


def migrate(conninfo: str, *, timeout_s: float = 60.0) -> list[str]:
    """Apply the migrations the database lacks; return the versions applied now.

    Idempotent and safe to run from several processes at once.
    """
    with (
        database_errors("migrate"),
        connect(conninfo, timeout_s=timeout_s, autocommit=True) as conn,
    ):
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            return _apply_missing(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))


def applied_migrations(conninfo: str, *, timeout_s: float = 60.0) -> list[str]:
    """Versions recorded in ``schema_migrations`` (empty for a fresh database)."""
    with database_errors("migration status"), connect(conninfo, timeout_s=timeout_s) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        return [row[0] for row in rows]


def _apply_missing(conn: psycopg.Connection[Any]) -> list[str]:
    conn.execute(_CREATE_LEDGER)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied: list[str] = []
    for version, sql in available_migrations():
        if version in done:
            continue
        with conn.transaction():
            # A whole file in one simple-protocol round trip (no parameters).
            conn.execute(sql.encode("utf-8"))
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        applied.append(version)
    return applied
