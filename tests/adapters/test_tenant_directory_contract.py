"""One TenantDirectory contract for the fake and Postgres, plus TenantAdmin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.memory import MemoryTenantDirectory
from ingest_core.adapters.postgres import PostgresTenantDirectory, TenantAdmin, TenantError
from ingest_core.adapters.postgres.common import open_pool
from ingest_core.errors import DirectoryUnavailable, StoreUnavailable
from ingest_core.model import Tenant, TenantStatus

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ingest_core.ports import TenantDirectory


@dataclass
class Harness:
    directory: TenantDirectory
    add: Callable[[str], Tenant]
    disable: Callable[[str], None]


@pytest.fixture(params=["memory", "postgres"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        fake = MemoryTenantDirectory()

        def disable_fake(slug: str) -> None:
            fake.add(slug, TenantStatus.DISABLED)

        return Harness(fake, fake.add, disable_fake)
    admin = TenantAdmin(request.getfixturevalue("pg_pool"))
    return Harness(
        PostgresTenantDirectory(request.getfixturevalue("pg_pool")),
        lambda slug: admin.add(slug, slug.title()),
        lambda slug: _require(admin.set_status(slug, TenantStatus.DISABLED)),
    )


def _require(done: bool) -> None:
    assert done


def test_resolves_a_known_slug(harness: Harness) -> None:
    acme = harness.add("acme")
    harness.add("globex")
    found = harness.directory.resolve("acme")
    assert found is not None
    assert (found.id, found.slug, found.status) == (acme.id, "acme", TenantStatus.ACTIVE)
    assert found.active


def test_unknown_slug_is_none(harness: Harness) -> None:
    harness.add("acme")
    assert harness.directory.resolve("initech") is None
    assert harness.directory.resolve("ACME") is None  # slugs are stored lower-case


def test_disabled_tenant_resolves_as_disabled(harness: Harness) -> None:
    harness.add("acme")
    harness.disable("acme")
    found = harness.directory.resolve("acme")
    assert found is not None
    assert found.status is TenantStatus.DISABLED
    assert not found.active


def test_unreachable_database_raises_directory_unavailable(tmp_path: Path) -> None:
    pool = open_pool(f"postgresql://postgres@/postgres?host={tmp_path}", timeout_s=1.0)
    try:
        with pytest.raises(DirectoryUnavailable):
            PostgresTenantDirectory(pool).resolve("acme")
    finally:
        pool.close()


def test_fake_unavailable_raises_directory_unavailable() -> None:
    fake = MemoryTenantDirectory()
    fake.unavailable = True
    with pytest.raises(DirectoryUnavailable):
        fake.resolve("acme")


# ------------------------------------------------------------------ administration


def test_admin_adds_lists_and_toggles(pg_pool) -> None:
    admin = TenantAdmin(pg_pool)
    globex = admin.add("globex", "Globex Corp")
    acme = admin.add("acme", "  Acme Inc  ")
    assert acme.name == "Acme Inc"
    assert [t.slug for t in admin.list()] == ["acme", "globex"]
    assert admin.list()[1] == globex
    assert admin.set_status("acme", TenantStatus.DISABLED) is True
    assert admin.list()[0].status is TenantStatus.DISABLED
    assert admin.set_status("acme", TenantStatus.ACTIVE) is True
    assert admin.list()[0].status is TenantStatus.ACTIVE
    assert admin.set_status("initech", TenantStatus.DISABLED) is False


def test_admin_refuses_duplicates(pg_pool) -> None:
    admin = TenantAdmin(pg_pool)
    first = admin.add("acme", "Acme")
    with pytest.raises(TenantError, match="already exists"):
        admin.add("acme", "Other Acme")
    assert admin.list() == [first]


@pytest.mark.parametrize(
    "slug",
    ["", "Acme", "-acme", "acme_co", "acme.co", "a" * 64, "k\u212aiwi", "acme ", "café"],
)
def test_admin_refuses_invalid_slugs(pg_pool, slug: str) -> None:
    with pytest.raises(TenantError, match="invalid tenant slug"):
        TenantAdmin(pg_pool).add(slug, "Name")
    assert TenantAdmin(pg_pool).list() == []


@pytest.mark.parametrize("slug", ["a", "0", "acme-co", "a" * 63, "9lives"])
def test_admin_accepts_valid_slugs(pg_pool, slug: str) -> None:
    assert TenantAdmin(pg_pool).add(slug, "Name").slug == slug


def test_admin_refuses_an_empty_name(pg_pool) -> None:
    with pytest.raises(TenantError):
        TenantAdmin(pg_pool).add("acme", "   ")


def test_schema_enforces_the_slug_rule_too(pg_pool) -> None:
    """A row written around TenantAdmin still cannot hold a bad slug."""
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation), pg_pool.connection() as conn:
        conn.execute("INSERT INTO organization (slug, name) VALUES ('Bad_Slug', 'x')")


def test_admin_maps_database_errors(tmp_path: Path) -> None:
    pool = open_pool(f"postgresql://postgres@/postgres?host={tmp_path}", timeout_s=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            TenantAdmin(pool).list()
    finally:
        pool.close()
