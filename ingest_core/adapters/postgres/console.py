"""``ConsoleReads`` in Postgres: the console's message list (filters, keyset
paging), one message with its attachments, body, events, deliveries and audit
trail, and the tenants' counts. ``org_slug`` (a tenant token's view) narrows
every query to that tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ingest_core.adapters.postgres.bodies import read_body
from ingest_core.adapters.postgres.common import database_errors

if TYPE_CHECKING:
    import uuid

    from ingest_core.adapters.postgres.common import Pool
    from ingest_core.console.reads import MessageFilter

_LIST = """
SELECT m.id, o.slug AS org_slug, m.status, m.received_at, m.subject, m.from_header,
       m.envelope_from, m.auth_dmarc, m.automated_kind, m.quarantine_reason, m.last_error,
       m.attempts, m.size_bytes,
       (SELECT count(*) FROM inbound_attachment a WHERE a.inbound_message_id = m.id)
           AS attachments
FROM inbound_message m JOIN organization o ON o.id = m.org_id
WHERE {where}
ORDER BY m.received_at DESC, m.id DESC
LIMIT %(limit)s
"""

_ATTACHMENTS = """
SELECT id, part_path, filename, content_type, detected_content_type, disposition, size_bytes,
       sha256, notes
FROM inbound_attachment WHERE inbound_message_id = %s ORDER BY part_path COLLATE "C"
"""

_EVENTS = "SELECT id, type, created_at FROM event WHERE message_id = %s ORDER BY created_at, id"

_DELIVERIES = """
SELECT d.event_id, e.type, d.endpoint_id, w.url, d.status, d.attempts, d.last_status,
       d.last_error, d.delivered_at, d.next_attempt_at
FROM webhook_delivery d JOIN event e ON e.id = d.event_id
JOIN webhook_endpoint w ON w.id = d.endpoint_id
WHERE e.message_id = %s ORDER BY d.created_at, d.id
"""

_AUDIT = """
SELECT at, actor, action, scope FROM audit_event
WHERE scope -> 'ids' @> to_jsonb(ARRAY[%s::text])
ORDER BY at DESC, id DESC LIMIT 100
"""

_TENANTS = """
SELECT o.slug, o.name, o.status, o.sender_policy, o.retention_days, o.retention_off,
       o.created_at
FROM organization o WHERE %(org)s::text IS NULL OR o.slug = %(org)s ORDER BY o.slug
"""

_HELD_KINDS = """
SELECT o.slug, p.kind FROM tenant_automated_policy p JOIN organization o ON o.id = p.org_id
WHERE p.action = 'hold' AND (%(org)s::text IS NULL OR o.slug = %(org)s)
ORDER BY p.kind
"""

_COUNTS = """
SELECT o.slug, m.status,
       count(*) FILTER (WHERE m.received_at >= now() - interval '24 hours') AS day,
       count(*) AS week
FROM inbound_message m JOIN organization o ON o.id = m.org_id
WHERE m.received_at >= now() - interval '7 days'
  AND (%(org)s::text IS NULL OR o.slug = %(org)s)
GROUP BY o.slug, m.status
"""


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class PostgresConsoleReads:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def messages(self, query: MessageFilter) -> list[dict[str, Any]]:
        where = ["true"]
        params: dict[str, object] = {"limit": query.limit}
        if query.org_slug is not None:
            where.append("o.slug = %(org)s")
            params["org"] = query.org_slug
        if query.status is not None:
            where.append("m.status = %(status)s")
            params["status"] = query.status
        if query.automated == "none":
            where.append("m.automated_kind IS NULL")
        elif query.automated == "any":
            where.append("m.automated_kind IS NOT NULL")
        elif query.automated is not None:
            where.append("m.automated_kind = %(kind)s")
            params["kind"] = query.automated
        if query.sender:
            where.append("(m.envelope_from ILIKE %(sender)s OR m.from_header ILIKE %(sender)s)")
            params["sender"] = _like(query.sender)
        if query.subject:
            where.append("m.subject ILIKE %(subject)s")
            params["subject"] = _like(query.subject)
        if query.since is not None:
            where.append("m.received_at >= %(since)s")
            params["since"] = query.since
        if query.after is not None:
            where.append("(m.received_at, m.id) < (%(after_at)s, %(after_id)s)")
            params["after_at"] = query.after.received_at
            params["after_id"] = query.after.message_id
        with (
            database_errors("console message list"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            return list(cur.execute(_LIST.format(where=" AND ".join(where)), params).fetchall())

    def message(self, message_id: uuid.UUID, org_slug: str | None) -> dict[str, Any] | None:
        with (
            database_errors("console message"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            row = cur.execute(
                "SELECT m.*, o.slug AS org_slug FROM inbound_message m"
                " JOIN organization o ON o.id = m.org_id"
                " WHERE m.id = %s AND (%s::text IS NULL OR o.slug = %s)",
                (message_id, org_slug, org_slug),
            ).fetchone()
            if row is None:
                return None
            detail = dict(row)
            detail["attachments"] = list(cur.execute(_ATTACHMENTS, (message_id,)).fetchall())
            detail["events"] = list(cur.execute(_EVENTS, (message_id,)).fetchall())
            detail["deliveries"] = list(cur.execute(_DELIVERIES, (message_id,)).fetchall())
            detail["audit"] = list(cur.execute(_AUDIT, (str(message_id),)).fetchall())
            detail["body"] = read_body(conn, row["org_id"], message_id)
        return detail

    def attachment(
        self, message_id: uuid.UUID, attachment_id: uuid.UUID, org_slug: str | None
    ) -> dict[str, Any] | None:
        with (
            database_errors("console attachment"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            row = cur.execute(
                "SELECT a.id, a.filename, a.size_bytes, a.sha256, a.object_key"
                " FROM inbound_attachment a JOIN organization o ON o.id = a.org_id"
                " WHERE a.id = %s AND a.inbound_message_id = %s"
                " AND (%s::text IS NULL OR o.slug = %s)",
                (attachment_id, message_id, org_slug, org_slug),
            ).fetchone()
        return dict(row) if row is not None else None

    def tenants(self, org_slug: str | None) -> list[dict[str, Any]]:
        with (
            database_errors("console tenants"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            tenants = [dict(row) for row in cur.execute(_TENANTS, {"org": org_slug}).fetchall()]
            counts = cur.execute(_COUNTS, {"org": org_slug}).fetchall()
            held = cur.execute(_HELD_KINDS, {"org": org_slug}).fetchall()
        by_slug: dict[str, dict[str, tuple[int, int]]] = {}
        for row in counts:
            by_slug.setdefault(row["slug"], {})[row["status"]] = (row["day"], row["week"])
        held_by_slug: dict[str, list[str]] = {}
        for row in held:
            held_by_slug.setdefault(row["slug"], []).append(row["kind"])
        for tenant in tenants:
            tenant["counts"] = by_slug.get(tenant["slug"], {})
            tenant["held_kinds"] = held_by_slug.get(tenant["slug"], [])
        return tenants

    def tenant_slugs(self) -> list[str]:
        with database_errors("console tenants"), self._pool.connection() as conn:
            rows = conn.execute("SELECT slug FROM organization ORDER BY slug").fetchall()
        return [row[0] for row in rows]
