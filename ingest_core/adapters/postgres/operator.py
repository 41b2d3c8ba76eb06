"""Operator queries: explicitly cross-tenant, for `ingest messages` and `ingest replay`.

Nothing that serves a tenant may use this module (docs/contracts.md#ports):
tenant-facing reads live on the repository and always take an org_id.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ingest_core.adapters.postgres.common import Pool, database_errors

if TYPE_CHECKING:
    from datetime import datetime

MIN_ID_PREFIX = 8
"""Hex digits an id prefix needs before it is looked up as one."""

_LIST = """
SELECT m.id, o.slug AS org_slug, m.status, m.received_at, m.subject, m.from_header,
       m.envelope_from, m.envelope_recipient, m.source_message_id, m.size_bytes,
       m.postfix_queue_id, m.attempts, m.last_error, m.auth_dmarc, m.quarantine_reason,
       m.automated_kind, m.automated_reason, m.bounce_original_recipient, m.bounce_status,
       (SELECT count(*) FROM inbound_attachment a WHERE a.inbound_message_id = m.id)
           AS attachments
FROM inbound_message m JOIN organization o ON o.id = m.org_id
WHERE (%(org)s::text IS NULL OR o.slug = %(org)s)
  AND (%(status)s::text IS NULL OR m.status = %(status)s)
  AND (%(since)s::timestamptz IS NULL OR m.received_at >= %(since)s)
ORDER BY m.received_at DESC
LIMIT %(limit)s
"""

# detected_type: the name Attachment uses, beside the declared content_type.
_ATTACHMENTS = """
SELECT part_path, filename, content_type, detected_content_type AS detected_type, disposition,
       size_bytes, sha256, object_key, notes
FROM inbound_attachment
WHERE inbound_message_id = %s
ORDER BY part_path COLLATE "C"
"""


class OperatorQueries:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def list_messages(
        self,
        *,
        org_slug: str | None,
        status: str | None,
        limit: int,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        with (
            database_errors("message listing"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                _LIST,
                {
                    "org": org_slug,
                    "status": status.upper() if status else None,
                    "limit": limit,
                    "since": since,
                },
            )
            return list(cur.fetchall())

    def show_message(self, message_id: uuid.UUID) -> dict[str, Any] | None:
        with (
            database_errors("message lookup"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT m.*, o.slug AS org_slug FROM inbound_message m"
                " JOIN organization o ON o.id = m.org_id WHERE m.id = %s",
                (message_id,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(_ATTACHMENTS, (message_id,))
            row["attachments"] = list(cur.fetchall())
            return dict(row)

    def find_ids(self, reference: str) -> list[uuid.UUID]:
        """Messages named by an inbound_message id (what our 250 reply carries and
        Postfix logs), a unique prefix of it (``MIN_ID_PREFIX`` or more hex
        digits), or a Message-ID header, with or without angle brackets."""
        return [row["id"] for row in self.find_candidates(reference)]

    def find_candidates(self, reference: str, limit: int = 20) -> list[dict[str, Any]]:
        """The messages ``find_ids`` finds, oldest first, each with its ``id``,
        ``org_slug``, ``status``, ``received_at`` and ``source_message_id`` (so
        that an ambiguous reference can list what it matched)."""
        text = reference.strip()
        try:
            as_id = uuid.UUID(text)
        except ValueError:
            pass
        else:
            return self._candidates("m.id = %(id)s", {"id": as_id}, limit)
        digits = text.replace("-", "").lower()
        if len(digits) >= MIN_ID_PREFIX and all(ch in "0123456789abcdef" for ch in digits):
            low = uuid.UUID(digits.ljust(32, "0")[:32])
            high = uuid.UUID(digits.ljust(32, "f")[:32])
            return self._candidates(
                "m.id BETWEEN %(low)s AND %(high)s", {"low": low, "high": high}, limit
            )
        bare = text.removeprefix("<").removesuffix(">")
        return self._candidates(
            "m.message_id_header = %(mid)s OR m.source_message_id = %(mid)s"
            " OR m.source_message_id LIKE %(conflict)s",
            {"mid": bare, "conflict": _like_prefix(bare) + "#%"},
            limit,
        )

    def _candidates(
        self, condition: str, params: dict[str, object], limit: int
    ) -> list[dict[str, Any]]:
        with (
            database_errors("message lookup"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT m.id, o.slug AS org_slug, m.status, m.received_at, m.source_message_id"
                " FROM inbound_message m JOIN organization o ON o.id = m.org_id"
                f" WHERE {condition} ORDER BY m.received_at, m.id LIMIT %(limit)s",
                {**params, "limit": limit},
            )
            return list(cur.fetchall())

    def tenant_exists(self, slug: str) -> bool:
        with database_errors("tenant lookup"), self._pool.connection() as conn:
            row = conn.execute("SELECT 1 FROM organization WHERE slug = %s", (slug,)).fetchone()
        return row is not None

    def raw_object_key(self, message_id: uuid.UUID) -> str | None:
        with database_errors("message lookup"), self._pool.connection() as conn:
            found = conn.execute(
                "SELECT raw_object_key FROM inbound_message WHERE id = %s", (message_id,)
            ).fetchone()
        return None if found is None else str(found[0])

    def select_ids(self, *, status: str | None, org_slug: str | None) -> list[uuid.UUID]:
        with database_errors("message selection"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT m.id FROM inbound_message m JOIN organization o ON o.id = m.org_id"
                " WHERE (%(status)s::text IS NULL OR m.status = %(status)s)"
                " AND (%(org)s::text IS NULL OR o.slug = %(org)s) ORDER BY m.received_at",
                {"status": status.upper() if status else None, "org": org_slug},
            ).fetchall()
        return [row[0] for row in rows]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
