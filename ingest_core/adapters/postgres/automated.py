"""Tenant policy for automated mail in Postgres (``tenant_automated_policy``,
migration 0004): what the worker reads and what ``ingest tenants automated``
changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.automated import AutomatedAction, AutomatedPolicy
from ingest_core.errors import TenantError
from ingest_core.model import AutomatedKind

if TYPE_CHECKING:
    import uuid

_POLICY = """
SELECT o.id, p.kind, p.action
FROM organization o LEFT JOIN tenant_automated_policy p ON p.org_id = o.id
WHERE {where}
"""

_SET = """
INSERT INTO tenant_automated_policy (org_id, kind, action)
SELECT id, %(kind)s, %(action)s FROM organization WHERE slug = %(slug)s
ON CONFLICT (org_id, kind) DO UPDATE SET action = EXCLUDED.action
"""


def _policy(rows: list[tuple[Any, ...]]) -> AutomatedPolicy:
    actions = tuple(
        (AutomatedKind(kind), AutomatedAction(action)) for _, kind, action in rows if kind
    )
    return AutomatedPolicy(tuple(sorted(actions)))


class PostgresAutomatedPolicies:
    """``AutomatedPolicySource`` for the worker. Raises StoreUnavailable."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def policy_for(self, org_id: uuid.UUID) -> AutomatedPolicy:
        with database_errors("read automated-mail policy"), self._pool.connection() as conn:
            rows = conn.execute(_POLICY.format(where="o.id = %s"), (org_id,)).fetchall()
        return _policy(rows)


class AutomatedAdmin:
    """Operator-side policy by tenant slug. Raises TenantError for an unknown
    tenant, StoreUnavailable for the database."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def policy(self, slug: str) -> AutomatedPolicy:
        with database_errors("read automated-mail policy"), self._pool.connection() as conn:
            rows = conn.execute(_POLICY.format(where="o.slug = %s"), (slug,)).fetchall()
        if not rows:
            raise TenantError(f"no tenant {slug!r}")
        return _policy(rows)

    def set_action(self, slug: str, kind: AutomatedKind, action: AutomatedAction) -> None:
        with database_errors("set automated-mail policy"), self._pool.connection() as conn:
            cursor = conn.execute(_SET, {"slug": slug, "kind": kind.value, "action": action.value})
            if cursor.rowcount != 1:
                raise TenantError(f"no tenant {slug!r}")
