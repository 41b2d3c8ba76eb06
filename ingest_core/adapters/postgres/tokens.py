"""API tokens in Postgres (``TokenRepository``): the ``api_token`` table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from ingest_core.adapters.postgres.common import database_errors
from ingest_core.api.tokens import TokenRecord
from ingest_core.errors import TenantError, UnknownTenant

if TYPE_CHECKING:
    from ingest_core.adapters.postgres.common import Pool

_COLUMNS = """t.id, t.name, t.org_id, o.slug, coalesce(o.status = 'active', false),
    t.secret_sha256, t.created_at, t.last_used_at, t.revoked_at"""
_FROM = "api_token t LEFT JOIN organization o ON o.id = t.org_id"
# A tenant's tokens (slug given) or the admin tokens (slug NULL).
_SCOPE = "((%(slug)s::text IS NULL AND t.org_id IS NULL) OR o.slug = %(slug)s)"


class PostgresTokens:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def insert(
        self, token_id: str, org_slug: str | None, name: str, secret_sha256: str
    ) -> TokenRecord:
        with database_errors("create token"), self._pool.connection() as conn:
            org_id = None
            if org_slug is not None:
                row = conn.execute(
                    "SELECT id FROM organization WHERE slug = %s", (org_slug,)
                ).fetchone()
                if row is None:
                    raise UnknownTenant(f"no tenant with slug {org_slug!r}")
                org_id = row[0]
            try:
                conn.execute(
                    "INSERT INTO api_token (id, org_id, name, secret_sha256)"
                    " VALUES (%s, %s, %s, %s)",
                    (token_id, org_id, name, secret_sha256),
                )
            except psycopg.errors.UniqueViolation:
                owner = f"tenant {org_slug}" if org_slug else "the admin tokens"
                raise TenantError(
                    f"{owner} already has a live token named {name!r}: revoke it or pick"
                    " another name"
                ) from None
            record = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.id = %s", (token_id,)
            ).fetchone()
        assert record is not None
        return _record(record)

    def list(self, org_slug: str | None) -> list[TokenRecord]:
        with database_errors("list tokens"), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE {_SCOPE} ORDER BY t.created_at, t.name",
                {"slug": org_slug},
            ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, org_slug: str | None, name: str) -> TokenRecord | None:
        with database_errors("revoke token"), self._pool.connection() as conn:
            row = conn.execute(
                "UPDATE api_token SET revoked_at = now() WHERE id = ("
                f" SELECT t.id FROM {_FROM} WHERE {_SCOPE}"
                " AND t.name = %(name)s AND t.revoked_at IS NULL) RETURNING id",
                {"slug": org_slug, "name": name},
            ).fetchone()
            if row is None:
                return None
            record = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.id = %s", (row[0],)
            ).fetchone()
        assert record is not None
        return _record(record)

    def find(self, token_id: str) -> TokenRecord | None:
        with database_errors("token lookup"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.id = %s", (token_id,)
            ).fetchone()
        return _record(row) if row is not None else None

    def touch(self, token_id: str) -> None:
        with database_errors("token last used"), self._pool.connection() as conn:
            conn.execute(
                "UPDATE api_token SET last_used_at = now() WHERE id = %s"
                " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                (token_id,),
            )


def _record(row: tuple[Any, ...]) -> TokenRecord:
    token_id, name, org_id, slug, active, secret, created, last_used, revoked = row
    return TokenRecord(token_id, name, org_id, slug, active, secret, created, last_used, revoked)
