"""Tenant sender policy in Postgres: what the worker reads and what
``ingest tenants senders`` / ``ingest tenants policy`` change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.errors import TenantError
from ingest_core.sender import SenderPolicy, SenderRules, normalise_pattern

if TYPE_CHECKING:
    import uuid

    import psycopg

_RULES = """
SELECT o.sender_policy,
       coalesce(array_agg(s.pattern ORDER BY s.pattern) FILTER (WHERE s.pattern IS NOT NULL),
                ARRAY[]::text[])
FROM organization o LEFT JOIN tenant_sender s ON s.org_id = o.id
WHERE {where}
GROUP BY o.id
"""


def _rules(row: tuple[Any, ...]) -> SenderRules:
    return SenderRules(SenderPolicy(row[0]), tuple(row[1]))


class PostgresSenderRules:
    """``SenderRulesSource`` for the worker. Raises StoreUnavailable."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def rules_for(self, org_id: uuid.UUID) -> SenderRules:
        with database_errors("read sender policy"), self._pool.connection() as conn:
            row = conn.execute(_RULES.format(where="o.id = %s"), (org_id,)).fetchone()
        return SenderRules() if row is None else _rules(row)


class SenderAdmin:
    """Operator-side policy management by tenant slug. Raises TenantError for an
    unknown tenant or an invalid pattern, StoreUnavailable for the database."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def rules(self, slug: str) -> SenderRules:
        with database_errors("read sender policy"), self._pool.connection() as conn:
            row = conn.execute(_RULES.format(where="o.slug = %s"), (slug,)).fetchone()
        if row is None:
            raise TenantError(f"no tenant {slug!r}")
        return _rules(row)

    def set_policy(self, slug: str, policy: SenderPolicy) -> None:
        with database_errors("set sender policy"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE organization SET sender_policy = %s WHERE slug = %s",
                (policy.value, slug),
            )
            if cursor.rowcount != 1:
                raise TenantError(f"no tenant {slug!r}")

    def add(self, slug: str, pattern: str) -> bool:
        """Add a pattern; False if the tenant already had it."""
        try:
            normalised = normalise_pattern(pattern)
        except ValueError as exc:
            raise TenantError(str(exc)) from exc
        with database_errors("add sender pattern"), self._pool.connection() as conn:
            org_id = _org_id(conn, slug)
            cursor = conn.execute(
                "INSERT INTO tenant_sender (org_id, pattern) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (org_id, normalised),
            )
            return cursor.rowcount == 1

    def remove(self, slug: str, pattern: str) -> bool:
        """Remove a pattern; False if the tenant did not have it."""
        with database_errors("remove sender pattern"), self._pool.connection() as conn:
            org_id = _org_id(conn, slug)
            cursor = conn.execute(
                "DELETE FROM tenant_sender WHERE org_id = %s AND pattern = %s",
                (org_id, pattern.strip().lower()),
            )
            return cursor.rowcount == 1


def _org_id(conn: psycopg.Connection[Any], slug: str) -> uuid.UUID:
    row = conn.execute("SELECT id FROM organization WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise TenantError(f"no tenant {slug!r}")
    org_id: uuid.UUID = row[0]
    return org_id
