"""Tenants in Postgres: the directory the recipient check asks, and the
administration the ``ingest tenants`` commands use."""

from __future__ import annotations

from typing import Any

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.addressing import SLUG_PATTERN
from ingest_core.errors import DirectoryUnavailable, TenantError
from ingest_core.model import Tenant, TenantStatus
from ingest_core.ports import NOT_CACHED, NotCached


class PostgresTenantDirectory:
    """``TenantDirectory``: slug → tenant. Raises DirectoryUnavailable."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def resolve(self, slug: str) -> Tenant | None:
        with (
            database_errors("tenant lookup", DirectoryUnavailable),
            self._pool.connection(deadline=True) as conn,
        ):
            row = conn.execute(
                "SELECT id, slug, name, status FROM organization WHERE slug = %s", (slug,)
            ).fetchone()
        return _tenant(row) if row is not None else None

    def peek(self, slug: str) -> Tenant | NotCached | None:
        return NOT_CACHED  # every answer is a database round trip


class TenantAdmin:
    """Operator-side tenant management. Raises TenantError or StoreUnavailable."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def add(self, slug: str, name: str) -> Tenant:
        check_slug(slug)
        if not name.strip():
            raise TenantError("a tenant needs a non-empty name")
        with database_errors("add tenant"), self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO organization (slug, name) VALUES (%s, %s)"
                " ON CONFLICT (slug) DO NOTHING RETURNING id, slug, name, status",
                (slug, name.strip()),
            ).fetchone()
        if row is None:
            raise TenantError(f"a tenant with slug {slug!r} already exists")
        return _tenant(row)

    def list(self) -> list[Tenant]:
        with database_errors("list tenants"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, slug, name, status FROM organization ORDER BY slug"
            ).fetchall()
        return [_tenant(row) for row in rows]

    def set_status(self, slug: str, status: TenantStatus) -> bool:
        """Enable or disable a tenant. False if no tenant has that slug."""
        with database_errors("set tenant status"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE organization SET status = %s WHERE slug = %s", (status.value, slug)
            )
            return cursor.rowcount == 1


def check_slug(slug: str) -> None:
    """Slugs appear in addresses (``orders+<slug>@``): lower-case ASCII letters,
    digits and inner hyphens, at most 63 characters."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise TenantError(
            f"invalid tenant slug {slug!r}: use 1-63 characters a-z, 0-9 and '-',"
            " starting with a letter or digit"
        )


def _tenant(row: tuple[Any, ...]) -> Tenant:
    tenant_id, slug, name, status = row
    return Tenant(id=tenant_id, slug=slug, name=name, status=TenantStatus(status))
