"""``AuditLog`` on the ``audit_event`` table (migration 0006)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.audit import AuditEvent

if TYPE_CHECKING:
    from datetime import datetime

_EVENTS = """
SELECT actor, action, org_slug, scope, count, at FROM audit_event
WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
  AND (%(org)s::text IS NULL OR org_slug = %(org)s)
ORDER BY at DESC, id DESC
LIMIT %(limit)s
"""


class PostgresAuditLog:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def record(self, event: AuditEvent) -> None:
        with database_errors("audit record"), self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO audit_event (actor, action, org_slug, scope, count, at)"
                " VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))",
                (
                    event.actor,
                    event.action,
                    event.org_slug,
                    Jsonb(dict(event.scope)),
                    event.count,
                    event.at,
                ),
            )

    def events(
        self, *, since: datetime | None = None, org_slug: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        with database_errors("audit listing"), self._pool.connection() as conn:
            rows = conn.execute(
                _EVENTS, {"since": since, "org": org_slug, "limit": limit}
            ).fetchall()
        return [
            AuditEvent(actor=actor, action=action, org_slug=slug, scope=scope, count=count, at=at)
            for actor, action, slug, scope, count, at in rows
        ]
