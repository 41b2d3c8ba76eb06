"""``LifecycleStore`` on Postgres (migration 0008): retention, legal holds,
erasure's selections, and the object removal markers (ingest_core/lifecycle.py)."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

import psycopg

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.adapters.postgres.outbox import emit_deleted
from ingest_core.errors import TenantError
from ingest_core.lifecycle import Removed, Selection

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

_NOT_HELD = """NOT EXISTS (
    SELECT 1 FROM legal_hold h WHERE h.removed_at IS NULL AND h.org_id = m.org_id
      AND (h.message_id IS NULL OR h.message_id = m.id))"""

_EXPIRED = f"""
SELECT m.id FROM inbound_message m JOIN organization o ON o.id = m.org_id
WHERE NOT o.retention_off
  AND coalesce(o.retention_days, %(default)s::integer) IS NOT NULL
  AND m.received_at < now() - make_interval(days => coalesce(o.retention_days, %(default)s))
  AND m.status <> 'PROCESSING'
  AND {_NOT_HELD}
ORDER BY m.received_at, m.id
LIMIT %(limit)s
"""

_EXPIRED_SUMMARY = f"""
SELECT o.slug, count(*), coalesce(sum(m.size_bytes + coalesce(
    (SELECT sum(a.size_bytes) FROM inbound_attachment a WHERE a.inbound_message_id = m.id),
    0)), 0)
FROM inbound_message m JOIN organization o ON o.id = m.org_id
WHERE NOT o.retention_off
  AND coalesce(o.retention_days, %(default)s::integer) IS NOT NULL
  AND m.received_at < now() - make_interval(days => coalesce(o.retention_days, %(default)s))
  AND m.status <> 'PROCESSING'
  AND {_NOT_HELD}
GROUP BY o.slug ORDER BY o.slug
"""

_DELETE_ATTACHMENTS = f"""
DELETE FROM inbound_attachment a USING inbound_message m
WHERE a.inbound_message_id = m.id AND m.id = ANY(%(ids)s) AND {_NOT_HELD}
RETURNING a.org_id, a.object_key, a.size_bytes
"""

# The messages a delete will remove (the same hold check), read first so their
# message.deleted events are written while the rows are still there.
_DELETABLE = f"""
SELECT m.id FROM inbound_message m WHERE m.id = ANY(%(ids)s) AND {_NOT_HELD}
"""

# The removed messages' own events (they carry its data); deliveries go by cascade.
_DELETE_EVENTS = """
DELETE FROM event WHERE message_id = ANY(%(ids)s) AND type <> 'message.deleted'
"""

_DELETE_MESSAGES = f"""
DELETE FROM inbound_message m USING organization o
WHERE o.id = m.org_id AND m.id = ANY(%(ids)s) AND {_NOT_HELD}
RETURNING m.id, m.org_id, o.slug, m.raw_object_key, m.size_bytes
"""

_REFERENCED = """
SELECT EXISTS (SELECT 1 FROM inbound_message WHERE raw_object_key = %(key)s)
    OR EXISTS (SELECT 1 FROM inbound_attachment WHERE object_key = %(key)s)
"""

# Listed keys no row references and no removal has in hand (the orphan collector).
_UNREFERENCED = """
SELECT k FROM unnest(%(keys)s::text[]) AS k
WHERE NOT EXISTS (SELECT 1 FROM inbound_message WHERE raw_object_key = k)
  AND NOT EXISTS (SELECT 1 FROM inbound_attachment WHERE object_key = k)
  AND NOT EXISTS (SELECT 1 FROM object_removal WHERE object_key = k)
"""

# A key whose rows are gone, to be checked: no refusal window yet.
_CANDIDATE = """
INSERT INTO object_removal (object_key, org_id, refuse_until) VALUES (%s, %s, '-infinity')
ON CONFLICT (object_key) DO UPDATE SET removed_at = NULL
"""

_MARK = """
INSERT INTO object_removal (object_key, org_id, marked_at, refuse_until)
VALUES (%(key)s, %(org)s, now(), now() + make_interval(secs => %(refuse)s))
ON CONFLICT (object_key) DO UPDATE
SET marked_at = now(), refuse_until = EXCLUDED.refuse_until, removed_at = NULL
"""


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    org_slug: str
    message_id: uuid.UUID | None
    reason: str
    created_by: str
    created_at: datetime
    removed_at: datetime | None = None


class PostgresLifecycle:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    # ----------------------------------------------------------------- retention

    def set_retention(self, slug: str, days: int | None, *, off: bool = False) -> bool:
        """``days`` None and not ``off``: inherit ``INGEST_RETENTION_DAYS``."""
        with database_errors("retention update"), self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE organization SET retention_days = %s, retention_off = %s WHERE slug = %s",
                (days, off, slug),
            )
            return cur.rowcount == 1

    def retention(self, slug: str) -> tuple[int | None, bool] | None:
        """(days, off) of a tenant, None if there is no such tenant."""
        with database_errors("retention lookup"), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT retention_days, retention_off FROM organization WHERE slug = %s", (slug,)
            ).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def expired(self, default_days: int | None, limit: int) -> list[uuid.UUID]:
        with database_errors("retention scan"), self._pool.connection() as conn:
            rows = conn.execute(_EXPIRED, {"default": default_days, "limit": limit}).fetchall()
        return [row[0] for row in rows]

    def expired_summary(self, default_days: int | None) -> dict[str, tuple[int, int]]:
        """Per tenant slug: messages past retention and their bytes (a dry run)."""
        with database_errors("retention scan"), self._pool.connection() as conn:
            rows = conn.execute(_EXPIRED_SUMMARY, {"default": default_days}).fetchall()
        return {slug: (int(count), int(size)) for slug, count, size in rows}

    # --------------------------------------------------------------------- holds

    def add_hold(self, slug: str, message_id: uuid.UUID | None, reason: str, by: str) -> Hold:
        with database_errors("hold creation"), self._pool.connection() as conn:
            org = conn.execute("SELECT id FROM organization WHERE slug = %s", (slug,)).fetchone()
            if org is None:
                raise TenantError(f"no tenant {slug}")
            if message_id is not None:
                owner = conn.execute(
                    "SELECT 1 FROM inbound_message WHERE id = %s AND org_id = %s",
                    (message_id, org[0]),
                ).fetchone()
                if owner is None:
                    raise TenantError(f"tenant {slug} has no message {message_id}")
            row = conn.execute(
                "INSERT INTO legal_hold (org_id, message_id, reason, created_by)"
                " VALUES (%s, %s, %s, %s) RETURNING id, created_at",
                (org[0], message_id, reason, by),
            ).fetchone()
        assert row is not None
        return Hold(row[0], slug, message_id, reason, by, row[1])

    def holds(self, slug: str | None = None, *, include_removed: bool = False) -> list[Hold]:
        with database_errors("hold listing"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT h.id, o.slug, h.message_id, h.reason, h.created_by, h.created_at,"
                " h.removed_at FROM legal_hold h JOIN organization o ON o.id = h.org_id"
                " WHERE (%(slug)s::text IS NULL OR o.slug = %(slug)s)"
                " AND (%(all)s OR h.removed_at IS NULL) ORDER BY h.id",
                {"slug": slug, "all": include_removed},
            ).fetchall()
        return [Hold(*row) for row in rows]

    def remove_hold(self, hold_id: int, by: str) -> Hold | None:
        with database_errors("hold removal"), self._pool.connection() as conn:
            row = conn.execute(
                "UPDATE legal_hold h SET removed_at = now(), removed_by = %s FROM organization o"
                " WHERE h.id = %s AND o.id = h.org_id AND h.removed_at IS NULL"
                " RETURNING h.id, o.slug, h.message_id, h.reason, h.created_by, h.created_at,"
                " h.removed_at",
                (by, hold_id),
            ).fetchone()
        return None if row is None else Hold(*row)

    # ------------------------------------------------------------------ erasure

    def select(
        self, slug: str, *, sender: str | None = None, message_id: uuid.UUID | None = None
    ) -> Selection:
        """A tenant's messages: from ``sender`` (the envelope sender or a From
        address, case-insensitively), the one ``message_id``, or all of them."""
        condition = "TRUE"
        params: dict[str, object] = {"slug": slug}
        if message_id is not None:
            condition, params["id"] = "m.id = %(id)s", message_id
        elif sender is not None:
            condition = (
                "(lower(m.envelope_from) = %(addr)s OR strpos(lower(m.from_header), %(addr)s) > 0)"
            )
            params["addr"] = sender.strip().lower()
        sql = (
            "SELECT m.id, m.envelope_from, m.from_header, m.size_bytes + coalesce("
            "(SELECT sum(a.size_bytes) FROM inbound_attachment a"
            " WHERE a.inbound_message_id = m.id), 0),"
            " (SELECT string_agg(h.reason, '; ') FROM legal_hold h"
            " WHERE h.removed_at IS NULL AND h.org_id = m.org_id"
            " AND (h.message_id IS NULL OR h.message_id = m.id))"
            " FROM inbound_message m JOIN organization o ON o.id = m.org_id"
            f" WHERE o.slug = %(slug)s AND {condition} ORDER BY m.received_at, m.id"
        )
        with database_errors("erasure selection"), self._pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        if sender is not None:
            rows = [row for row in rows if _from_sender(row, sender)]
        free = [row for row in rows if row[4] is None]
        held = [row for row in rows if row[4] is not None]
        return Selection(
            ids=tuple(row[0] for row in free),
            bytes=sum(int(row[3]) for row in free),
            held=tuple(row[0] for row in held),
            hold_reasons=tuple(dict.fromkeys(str(row[4]) for row in held)),
        )

    def tenant_held(self, slug: str) -> list[str]:
        """Reasons of the live holds on a tenant or any of its messages."""
        with database_errors("hold lookup"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT h.reason FROM legal_hold h JOIN organization o ON o.id = h.org_id"
                " WHERE o.slug = %s AND h.removed_at IS NULL ORDER BY h.id",
                (slug,),
            ).fetchall()
        return [row[0] for row in rows]

    def delete_tenant(self, slug: str) -> dict[str, int]:
        """The tenant row and every row that names it (tokens, policies, allow-listed
        senders, webhook endpoints …): the tables with a foreign key to
        ``organization``, found in the catalogue so a later table is included.
        Its messages must be gone already. Audit events keep the slug as text."""
        counts: dict[str, int] = {}
        with database_errors("tenant deletion"), self._pool.connection() as conn:
            org = conn.execute("SELECT id FROM organization WHERE slug = %s", (slug,)).fetchone()
            if org is None:
                raise TenantError(f"no tenant {slug}")
            pending = _referencing_tables(conn)
            for _ in range(len(pending) + 1):  # a table another one references goes later
                waiting = []
                for table, column in pending:
                    try:
                        with conn.transaction():
                            cur = conn.execute(
                                f'DELETE FROM {table} WHERE "{column}" = %s',  # the catalogue's
                                (org[0],),
                            )
                    except psycopg.errors.ForeignKeyViolation:
                        waiting.append((table, column))
                        continue
                    if cur.rowcount:
                        counts[table] = cur.rowcount
                pending = waiting
            conn.execute("DELETE FROM organization WHERE id = %s", (org[0],))
        return counts

    # ---------------------------------------------------------- rows, then objects

    def delete_messages(self, ids: Sequence[uuid.UUID], reason: str = "retention") -> Removed:
        with database_errors("message removal"), self._pool.connection() as conn:
            # Holds added while this runs wait for it (and the other way round).
            conn.execute("LOCK TABLE legal_hold IN SHARE MODE")
            going = [row[0] for row in conn.execute(_DELETABLE, {"ids": list(ids)}).fetchall()]
            if going:
                emit_deleted(conn, going, reason)
                conn.execute(_DELETE_EVENTS, {"ids": going})
            attachments = conn.execute(_DELETE_ATTACHMENTS, {"ids": list(ids)}).fetchall()
            messages = conn.execute(_DELETE_MESSAGES, {"ids": list(ids)}).fetchall()
            candidates = {(org_id, key) for _, org_id, _, key, _ in messages}
            candidates |= {(org_id, key) for org_id, key, _ in attachments}
            if candidates:  # found again by the next run if this one dies now
                conn.cursor().executemany(
                    _CANDIDATE, [(key, org) for org, key in sorted(candidates, key=str)]
                )
        by_tenant: dict[str, tuple[int, int]] = {}
        slug_of = {org_id: slug for _, org_id, slug, _, _ in messages}
        for _, _, slug, _, size in messages:
            count, total = by_tenant.get(slug, (0, 0))
            by_tenant[slug] = (count + 1, total + int(size))
        for org_id, _, size in attachments:
            count, total = by_tenant[slug_of[org_id]]
            by_tenant[slug_of[org_id]] = (count, total + int(size))
        keys = [(org_id, key) for _, org_id, _, key, _ in messages]
        keys += [(org_id, key) for org_id, key, _ in attachments]
        return Removed(
            messages=len(messages),
            attachments=len(attachments),
            bytes=sum(total for _, total in by_tenant.values()),
            keys=tuple(keys),
            by_tenant=by_tenant,
        )

    def mark_for_removal(self, org_id: uuid.UUID, key: str, refuse_s: float) -> bool:
        with database_errors("object removal"), self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            row = conn.execute(_REFERENCED, {"key": key}).fetchone()
            if row is not None and row[0]:
                conn.execute("DELETE FROM object_removal WHERE object_key = %s", (key,))
                return False
            conn.execute(_MARK, {"key": key, "org": org_id, "refuse": refuse_s})
            return True

    def confirm_removed(self, key: str) -> None:
        with database_errors("object removal"), self._pool.connection() as conn:
            conn.execute(
                "UPDATE object_removal SET removed_at = now() WHERE object_key = %s", (key,)
            )

    def unconfirmed(self, limit: int) -> list[tuple[uuid.UUID, str]]:
        with database_errors("object removal"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT org_id, object_key FROM object_removal WHERE removed_at IS NULL"
                " ORDER BY marked_at LIMIT %s",
                (limit,),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def forget_removed(self) -> int:
        with database_errors("object removal"), self._pool.connection() as conn:
            cur = conn.execute(
                "DELETE FROM object_removal WHERE removed_at IS NOT NULL AND refuse_until < now()"
            )
            return cur.rowcount

    def unreferenced(self, keys: Sequence[str]) -> list[str]:
        with database_errors("object removal"), self._pool.connection() as conn:
            rows = conn.execute(_UNREFERENCED, {"keys": list(keys)}).fetchall()
        return [row[0] for row in rows]

    def record_run(self, messages: int, objects: int, size: int) -> None:
        with database_errors("purge run record"), self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO purge_last_run (messages, objects, bytes) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET finished_at = now(),"
                " messages = EXCLUDED.messages, objects = EXCLUDED.objects,"
                " bytes = EXCLUDED.bytes",
                (messages, objects, size),
            )


def _from_sender(row: tuple[Any, ...], sender: str) -> bool:
    """The envelope sender, or one of the From addresses, is ``sender`` (the SQL
    filter only found candidates: a From name may contain the address as text)."""
    wanted = sender.strip().lower()
    if str(row[1]).lower() == wanted:
        return True
    return any(address.lower() == wanted for _, address in getaddresses([row[2] or ""]))


def _referencing_tables(conn: Any) -> list[tuple[str, str]]:
    """(table, column) of every single-column foreign key to organization(id)."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f' AND c.confrelid = 'organization'::regclass"
        " AND cardinality(c.conkey) = 1"
    ).fetchall()
    return [(table, column) for table, column in rows]
