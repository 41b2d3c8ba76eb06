"""Tenant sender rules in Postgres: what the worker reads, per tenant."""

from __future__ import annotations

import uuid

import pytest

from ingest_core.adapters.postgres import TenantAdmin, TenantError
from ingest_core.adapters.postgres.senders import PostgresSenderRules, SenderAdmin
from ingest_core.sender import SenderPolicy, SenderRules


def test_rules_are_per_tenant(pg_pool):
    tenants = TenantAdmin(pg_pool)
    acme, beta = tenants.add("acme", "Acme"), tenants.add("beta", "Beta")
    admin, rules = SenderAdmin(pg_pool), PostgresSenderRules(pg_pool)
    assert rules.rules_for(acme.id) == SenderRules()
    assert rules.rules_for(uuid.uuid4()) == SenderRules()  # unknown org: nothing to enforce
    admin.set_policy("acme", SenderPolicy.ALLOWLIST)
    assert admin.add("acme", "*@big.example")
    assert admin.add("acme", "Buyer@Other.Example")
    assert not admin.add("acme", "*@BIG.example")
    assert admin.add("beta", "*@beta-only.example")
    assert rules.rules_for(acme.id) == SenderRules(
        SenderPolicy.ALLOWLIST, ("*@big.example", "buyer@other.example")
    )
    assert rules.rules_for(beta.id) == SenderRules(SenderPolicy.MONITOR, ("*@beta-only.example",))
    assert admin.remove("acme", "BUYER@other.example")
    assert rules.rules_for(acme.id).patterns == ("*@big.example",)


def test_the_database_refuses_a_malformed_pattern(pg_pool):
    import psycopg

    org = TenantAdmin(pg_pool).add("acme", "Acme")
    with pg_pool.connection() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO tenant_sender (org_id, pattern) VALUES (%s, 'Nope')", (org.id,))
    with pytest.raises(TenantError):
        SenderAdmin(pg_pool).add("acme", "*")
    with pytest.raises(TenantError):
        SenderAdmin(pg_pool).set_policy("nobody", SenderPolicy.DMARC)
