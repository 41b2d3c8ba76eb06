"""The tenant API's reads (``TenantReads``). Every query filters by tenant, and
attachment queries by tenant and message: another tenant's id, or an attachment
of another message, is simply not found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ingest_core.adapters.postgres.bodies import read_body
from ingest_core.adapters.postgres.common import database_errors
from ingest_core.api.reads import AttachmentRow, MessageQuery, MessageRow

if TYPE_CHECKING:
    import uuid

    from ingest_core.adapters.postgres.common import Pool
    from ingest_core.bodies import MessageBody

_MESSAGE = """id, received_at, status, source_message_id, message_id_header, subject,
    from_header, envelope_from, envelope_recipient, sha256, size_bytes, raw_object_key,
    processed_at, quarantine_reason, released_at, automated_kind, automated_reason,
    auth_spf, auth_dkim, auth_dmarc, auth_dmarc_policy, auth_arc, auth_from_domain,
    auth_aligned"""
_ATTACHMENT = """id, inbound_message_id, part_path, filename, content_type,
    detected_content_type, disposition, size_bytes, sha256, object_key"""


class PostgresTenantReads:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def messages(self, query: MessageQuery) -> list[MessageRow]:
        where = ["org_id = %(org)s"]
        params: dict[str, Any] = {"org": query.org_id, "limit": query.limit}
        if query.status is not None:
            where.append("status = %(status)s")
            params["status"] = query.status
        if query.since is not None:
            where.append("received_at >= %(since)s")
            params["since"] = query.since
        if query.until is not None:
            where.append("received_at < %(until)s")
            params["until"] = query.until
        if query.automated == "none":
            where.append("automated_kind IS NULL")
        elif query.automated == "any":
            where.append("automated_kind IS NOT NULL")
        elif query.automated is not None:
            where.append("automated_kind = %(kind)s")
            params["kind"] = query.automated
        if query.after is not None:
            where.append("(received_at, id) < (%(after_at)s, %(after_id)s)")
            params["after_at"] = query.after.received_at
            params["after_id"] = query.after.message_id
        sql = (
            f"SELECT {_MESSAGE} FROM inbound_message WHERE {' AND '.join(where)}"
            " ORDER BY received_at DESC, id DESC LIMIT %(limit)s"
        )
        with (
            database_errors("list messages"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(sql, params).fetchall()
        return [_message(row) for row in rows]

    def message(self, org_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow | None:
        with (
            database_errors("read message"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            row = cur.execute(
                f"SELECT {_MESSAGE} FROM inbound_message WHERE org_id = %s AND id = %s",
                (org_id, message_id),
            ).fetchone()
        return _message(row) if row is not None else None

    def attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[AttachmentRow]:
        with (
            database_errors("list attachments"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(
                f"SELECT {_ATTACHMENT} FROM inbound_attachment"
                " WHERE org_id = %s AND inbound_message_id = %s ORDER BY part_path",
                (org_id, message_id),
            ).fetchall()
        return [_attachment(row) for row in rows]

    def attachment(
        self, org_id: uuid.UUID, message_id: uuid.UUID, attachment_id: uuid.UUID
    ) -> AttachmentRow | None:
        with (
            database_errors("read attachment"),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            row = cur.execute(
                f"SELECT {_ATTACHMENT} FROM inbound_attachment"
                " WHERE org_id = %s AND inbound_message_id = %s AND id = %s",
                (org_id, message_id, attachment_id),
            ).fetchone()
        return _attachment(row) if row is not None else None

    def body(self, org_id: uuid.UUID, message_id: uuid.UUID) -> MessageBody | None:
        with database_errors("read body"), self._pool.connection() as conn:
            return read_body(conn, org_id, message_id)


def _message(row: dict[str, Any]) -> MessageRow:
    fields = {
        "id": str(row["id"]),
        "status": row["status"],
        "received_at": row["received_at"].isoformat(),
        "processed_at": row["processed_at"].isoformat() if row["processed_at"] else None,
        "released_at": row["released_at"].isoformat() if row["released_at"] else None,
        "envelope": {"from": row["envelope_from"], "recipient": row["envelope_recipient"]},
        "headers": {
            "message_id": row["message_id_header"],
            "subject": row["subject"],
            "from": row["from_header"],
        },
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "quarantine_reason": row["quarantine_reason"],
        "automated": {"kind": row["automated_kind"], "reason": row["automated_reason"]},
        "sender": {
            "spf": row["auth_spf"],
            "dkim": row["auth_dkim"],
            "dmarc": row["auth_dmarc"],
            "dmarc_policy": row["auth_dmarc_policy"],
            "arc": row["auth_arc"],
            "from_domain": row["auth_from_domain"],
            "aligned": row["auth_aligned"],
        },
    }
    return MessageRow(
        row["id"],
        row["received_at"],
        row["raw_object_key"],
        row["sha256"],
        row["size_bytes"],
        fields,
    )


def _attachment(row: dict[str, Any]) -> AttachmentRow:
    fields = {
        "id": str(row["id"]),
        "part_path": row["part_path"],
        "filename": row["filename"],
        "declared_type": row["content_type"],
        "detected_type": row["detected_content_type"],
        "disposition": row["disposition"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
    }
    return AttachmentRow(
        row["id"],
        row["inbound_message_id"],
        row["object_key"],
        row["filename"],
        row["content_type"],
        row["sha256"],
        row["size_bytes"],
        fields,
    )
