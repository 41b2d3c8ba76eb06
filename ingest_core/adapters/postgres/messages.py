"""``MessageRepository`` on Postgres (docs/contracts.md#durable-accept, docs/schema.md).

Every method is one short transaction on a pooled connection; the pool's
context manager commits on success and rolls back on error. Reads that serve a
tenant filter on ``org_id`` in SQL, so another tenant's rows never leave the
database.

Each state change the order product hears of writes its event in the same
transaction (``outbox.emit``; docs/events.md): received, processed,
quarantined, failed (final) and released.

The rest of the Postgres adapter lives beside this module: ``common``
(deadlines, pool, error mapping), ``migrate`` (schema), ``tenants``
(directory and administration) and ``embedded`` (the default local server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from ingest_core.adapters.postgres.bodies import write_body
from ingest_core.adapters.postgres.common import Pool, clean_text, database_errors
from ingest_core.adapters.postgres.outbox import emit
from ingest_core.errors import RecordRejected, StoreUnavailable
from ingest_core.events import EventType
from ingest_core.model import (
    Attachment,
    AuthVerdict,
    AutomatedVerdict,
    BounceDetails,
    MessageStatus,
    NewMessage,
    Recorded,
    RecordKind,
    StoredMessage,
)

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

    from ingest_core.bodies import MessageBody


_MESSAGE_COLUMNS = (
    "id", "org_id", "source_message_id", "sha256", "content_sha256", "size_bytes",
    "raw_object_key", "envelope_from", "envelope_recipient", "subject", "from_header",
    "received_at", "status", "attempts", "claimed_at", "last_error", "parser_version",
    "processed_at", "client_address", "client_helo", "postfix_queue_id",
    "quarantine_reason", "released_at",
)  # fmt: skip
_AUTH_COLUMNS = (
    "auth_spf", "auth_dkim", "auth_dmarc", "auth_dmarc_policy", "auth_arc",
    "auth_from_domain", "auth_from_address", "auth_aligned", "auth_temporary", "auth_results",
)  # fmt: skip
_MESSAGE_SELECT = ", ".join(_MESSAGE_COLUMNS + _AUTH_COLUMNS)

_RECORD_AUTH = """
UPDATE inbound_message SET
    auth_spf = %(spf)s, auth_dkim = %(dkim)s, auth_dmarc = %(dmarc)s,
    auth_dmarc_policy = %(dmarc_policy)s, auth_arc = %(arc)s,
    auth_from_domain = %(from_domain)s, auth_from_address = %(from_address)s,
    auth_aligned = %(aligned)s, auth_temporary = %(temporary)s,
    auth_results = %(summary)s, auth_checked_at = now()
WHERE id = %(id)s
"""

_RECORD_AUTOMATED = """
UPDATE inbound_message SET
    automated_kind = %(kind)s, automated_reason = %(reason)s, automated_checked_at = now(),
    bounce_original_recipient = %(recipient)s, bounce_action = %(action)s,
    bounce_status = %(status)s, bounce_diagnostic = %(diagnostic)s
WHERE id = %(id)s
"""

_INSERT_MESSAGE = """
INSERT INTO inbound_message (
    org_id, source, source_message_id, message_id_header, sha256, content_sha256,
    size_bytes, raw_object_key, envelope_from, envelope_recipient, subject, from_header,
    received_at, client_address, client_helo, postfix_queue_id
) VALUES (
    %(org_id)s, %(source)s, %(source_message_id)s, %(message_id_header)s, %(sha256)s,
    %(content_sha256)s, %(size_bytes)s, %(raw_object_key)s, %(envelope_from)s,
    %(envelope_recipient)s, %(subject)s, %(from_header)s, %(received_at)s,
    %(client_address)s, %(client_helo)s, %(postfix_queue_id)s
)
ON CONFLICT (org_id, source, source_message_id) DO NOTHING
RETURNING id
"""

_FIND_BY_SOURCE = """
SELECT id, content_sha256 FROM inbound_message
WHERE org_id = %s AND source = %s AND source_message_id = %s
"""

_CLAIM = f"""
UPDATE inbound_message
SET status = 'PROCESSING', attempts = attempts + 1, claimed_at = now()
WHERE id = %s
  AND (status = 'RECEIVED'
       OR (status = 'PROCESSING' AND claimed_at < now() - make_interval(secs => %s)))
RETURNING {_MESSAGE_SELECT}
"""

# The attachment takes org_id from its message row, so the two cannot disagree.
# A part path seen before keeps its row (and id); everything else is replaced.
_UPSERT_ATTACHMENT = """
INSERT INTO inbound_attachment (
    inbound_message_id, org_id, part_path, filename, content_type, disposition,
    size_bytes, sha256, object_key, notes, detected_content_type
)
SELECT id, org_id, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM inbound_message WHERE id = %s
ON CONFLICT (inbound_message_id, part_path) DO UPDATE SET
    org_id = EXCLUDED.org_id,
    filename = EXCLUDED.filename,
    content_type = EXCLUDED.content_type,
    disposition = EXCLUDED.disposition,
    size_bytes = EXCLUDED.size_bytes,
    sha256 = EXCLUDED.sha256,
    object_key = EXCLUDED.object_key,
    notes = EXCLUDED.notes,
    detected_content_type = EXCLUDED.detected_content_type
"""

_DELETE_OTHER_ATTACHMENTS = """
DELETE FROM inbound_attachment
WHERE inbound_message_id = %s AND part_path <> ALL (%s::text[])
"""

_MARK_PROCESSED = """
UPDATE inbound_message
SET status = 'PROCESSED', processed_at = now(), parser_version = %s, last_error = NULL
WHERE id = %s
"""

_ATTACHMENT_SELECT = """
SELECT part_path, content_type, disposition, filename, size_bytes, sha256, object_key, notes,
       detected_content_type
FROM inbound_attachment
WHERE inbound_message_id = %s AND org_id = %s
ORDER BY part_path COLLATE "C"
"""

# Bounds what one failure can add to a row; the full error is in the worker's log.
MAX_ERROR_CHARS = 4000


class PostgresMessageRepository:
    """``MessageRepository`` on a shared connection pool. Raises StoreUnavailable."""

    def __init__(self, pool: Pool, *, api_url: str = "http://127.0.0.1:9326") -> None:
        self._pool = pool
        self._api_url = api_url.rstrip("/")  # the base of the URLs in event payloads

    def _emit(self, conn: psycopg.Connection[Any], message_id: uuid.UUID, kind: EventType) -> None:
        emit(conn, [message_id], kind, self._api_url)

    def record_received(self, message: NewMessage) -> Recorded:
        with database_errors("record message"), self._pool.connection() as conn:
            return self._record(conn, [message])[0]

    def record_many(self, messages: Sequence[NewMessage]) -> list[Recorded]:
        """Several messages in one transaction and one commit (group commit)."""
        try:
            with database_errors("record messages"), self._pool.connection() as conn:
                return self._record(conn, messages)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, psycopg.errors.DataError | psycopg.errors.IntegrityError):
                raise RecordRejected(f"record messages: data refused ({exc})") from exc
            raise

    def _record(
        self, conn: psycopg.Connection[Any], messages: Sequence[NewMessage]
    ) -> list[Recorded]:
        """The rows, and for the new ones (a conflict-stored row is new) their
        ``message.received`` events, in one statement for the batch; a duplicate
        emits nothing."""
        recorded = [self._insert(conn, message) for message in messages]
        new = [r.id for r in recorded if r.kind is not RecordKind.DUPLICATE]
        if new:
            emit(conn, new, EventType.RECEIVED, self._api_url)
        return recorded

    def _insert(self, conn: psycopg.Connection[Any], message: NewMessage) -> Recorded:
        params = _insert_params(message)
        inserted = conn.execute(_INSERT_MESSAGE, params).fetchone()
        if inserted is not None:
            return Recorded(RecordKind.CREATED, inserted[0])
        existing = self._find(conn, params)
        if existing[1] == params["content_sha256"]:
            return Recorded(RecordKind.DUPLICATE, existing[0])
        # Same Message-ID, other content: its own row under a derived id.
        params["source_message_id"] = (
            f"{params['source_message_id']}#{params['content_sha256'][:16]}"
        )
        inserted = conn.execute(_INSERT_MESSAGE, params).fetchone()
        if inserted is not None:
            return Recorded(RecordKind.CONFLICT_STORED, inserted[0])
        return Recorded(RecordKind.DUPLICATE, self._find(conn, params)[0])

    @staticmethod
    def _find(conn: psycopg.Connection[Any], params: dict[str, Any]) -> tuple[Any, ...]:
        """The row an insert just conflicted with (rows are never deleted, and
        READ COMMITTED lets this statement see the committed winner)."""
        row: tuple[Any, ...] | None = conn.execute(
            _FIND_BY_SOURCE,
            (params["org_id"], params["source"], params["source_message_id"]),
        ).fetchone()
        if row is None:  # pragma: no cover - only if a row was deleted in between
            raise StoreUnavailable("record message: the conflicting row vanished; retry")
        return row

    def get(self, org_id: uuid.UUID, message_id: uuid.UUID) -> StoredMessage | None:
        with database_errors("read message"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_MESSAGE_SELECT} FROM inbound_message WHERE id = %s AND org_id = %s",
                (message_id, org_id),
            ).fetchone()
        return _stored(row) if row is not None else None

    def claim(self, message_id: uuid.UUID, lease_s: float) -> StoredMessage | None:
        """The conditional UPDATE is the lock: of two concurrent claimers, the
        second re-checks the row after the first commits and matches nothing."""
        with database_errors("claim message"), self._pool.connection() as conn:
            row = conn.execute(_CLAIM, (message_id, float(lease_s))).fetchone()
        return _stored(row) if row is not None else None

    def finish(
        self,
        message_id: uuid.UUID,
        attachments: Sequence[Attachment],
        parser_version: str,
        body: MessageBody | None = None,
    ) -> None:
        """Make ``attachments`` the message's whole manifest (and ``body`` its
        ``message_body`` row) and mark it PROCESSED, in one transaction (the pool
        commits when the block ends).

        A re-extraction (``ingest replay``, a newer parser) updates the rows of
        part paths it produces again, keeping their ids, and deletes the rows of
        parts it no longer produces. The message row is updated first: its row
        lock makes a concurrent finish of the same message wait for this one to
        commit, so the later manifest wins whole rather than merged.
        """
        rows = [_attachment_params(message_id, a) for a in attachments]
        part_paths = [a.part_path for a in attachments]
        with database_errors("finish message"), self._pool.connection() as conn:
            conn.execute(_MARK_PROCESSED, (parser_version, message_id))
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(_UPSERT_ATTACHMENT, rows)
            conn.execute(_DELETE_OTHER_ATTACHMENTS, (message_id, part_paths))
            if body is not None:
                write_body(conn, message_id, body, parser_version)
            self._emit(conn, message_id, EventType.PROCESSED)

    def fail(self, message_id: uuid.UUID, error: str, *, final: bool) -> None:
        status = MessageStatus.FAILED if final else MessageStatus.RECEIVED
        with database_errors("record failure"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = %s, last_error = %s, claimed_at = NULL"
                " WHERE id = %s",
                (status.value, clean_text(error[:MAX_ERROR_CHARS]), message_id),
            )
            if final and cursor.rowcount == 1:
                self._emit(conn, message_id, EventType.FAILED)

    def record_auth(self, message_id: uuid.UUID, verdict: AuthVerdict) -> None:
        with database_errors("record sender authentication"), self._pool.connection() as conn:
            conn.execute(_RECORD_AUTH, _auth_params(message_id, verdict))

    def record_automated(self, message_id: uuid.UUID, verdict: AutomatedVerdict) -> None:
        with database_errors("record automated-mail verdict"), self._pool.connection() as conn:
            conn.execute(_RECORD_AUTOMATED, _automated_params(message_id, verdict))

    def quarantine(self, message_id: uuid.UUID, reason: str) -> None:
        with database_errors("quarantine message"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = 'QUARANTINED', quarantine_reason = %s,"
                " claimed_at = NULL, last_error = NULL WHERE id = %s AND status = 'PROCESSING'",
                (clean_text(reason[:MAX_ERROR_CHARS]), message_id),
            )
            if cursor.rowcount == 1:
                self._emit(conn, message_id, EventType.QUARANTINED)

    def release(self, message_id: uuid.UUID) -> bool:
        with database_errors("release message"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = 'RECEIVED', released_at = now(),"
                " attempts = 0, claimed_at = NULL WHERE id = %s AND status = 'QUARANTINED'",
                (message_id,),
            )
            if cursor.rowcount != 1:
                return False
            self._emit(conn, message_id, EventType.RELEASED)
            return True

    def list_attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[Attachment]:
        with database_errors("list attachments"), self._pool.connection() as conn:
            rows = conn.execute(_ATTACHMENT_SELECT, (message_id, org_id)).fetchall()
        return [_attachment(row) for row in rows]

    def stale(self, received_before: datetime, claimed_before: datetime) -> list[uuid.UUID]:
        with database_errors("find stale messages"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM inbound_message WHERE status = 'RECEIVED' AND received_at < %s"
                " UNION ALL"
                " SELECT id FROM inbound_message"
                " WHERE status = 'PROCESSING' AND claimed_at < %s",
                (received_before, claimed_before),
            ).fetchall()
        return [row[0] for row in rows]

    def reset_for_replay(self, message_id: uuid.UUID) -> bool:
        with database_errors("reset message"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = 'RECEIVED', attempts = 0, claimed_at = NULL"
                " WHERE id = %s",
                (message_id,),
            )
            return cursor.rowcount == 1

    def ids_with_status(self, status: MessageStatus, org_id: uuid.UUID | None) -> list[uuid.UUID]:
        with database_errors("list messages"), self._pool.connection() as conn:
            if org_id is None:
                rows = conn.execute(
                    "SELECT id FROM inbound_message WHERE status = %s ORDER BY received_at, id",
                    (status.value,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id FROM inbound_message WHERE status = %s AND org_id = %s"
                    " ORDER BY received_at, id",
                    (status.value, org_id),
                ).fetchall()
        return [row[0] for row in rows]


def _insert_params(message: NewMessage) -> dict[str, Any]:
    return {
        "org_id": message.org_id,
        "source": message.source,
        "source_message_id": clean_text(message.source_message_id),
        "message_id_header": clean_text(message.message_id_header),
        "sha256": message.sha256,
        "content_sha256": message.content_sha256,
        "size_bytes": message.size_bytes,
        "raw_object_key": message.raw_object_key,
        "envelope_from": clean_text(message.envelope_from),
        "envelope_recipient": clean_text(message.envelope_recipient),
        "subject": clean_text(message.subject),
        "from_header": clean_text(message.from_header),
        "received_at": message.received_at,
        "client_address": clean_text(message.client_address),
        "client_helo": clean_text(message.client_helo),
        "postfix_queue_id": clean_text(message.postfix_queue_id),
    }


def _attachment_params(message_id: uuid.UUID, attachment: Attachment) -> tuple[Any, ...]:
    return (
        attachment.part_path,
        clean_text(attachment.filename),
        clean_text(attachment.content_type),
        clean_text(attachment.disposition),
        attachment.size_bytes,
        attachment.sha256,
        attachment.object_key,
        [clean_text(note) for note in attachment.notes],
        clean_text(attachment.detected_type),
        message_id,
    )


def _auth_params(message_id: uuid.UUID, verdict: AuthVerdict) -> dict[str, Any]:
    dkim = [{"domain": d, "selector": s, "result": r} for d, s, r in verdict.dkim]
    return {
        "id": message_id,
        "spf": verdict.spf,
        "dkim": Jsonb([{k: clean_text(v) for k, v in entry.items()} for entry in dkim]),
        "dmarc": verdict.dmarc,
        "dmarc_policy": clean_text(verdict.dmarc_policy),
        "arc": verdict.arc,
        "from_domain": clean_text(verdict.from_domain),
        "from_address": clean_text(verdict.from_address),
        "aligned": verdict.aligned,
        "temporary": verdict.temporary,
        "summary": clean_text(verdict.summary[:MAX_ERROR_CHARS]),
    }


def _automated_params(message_id: uuid.UUID, verdict: AutomatedVerdict) -> dict[str, Any]:
    bounce = verdict.bounce or BounceDetails()
    return {
        "id": message_id,
        "kind": verdict.kind.value if verdict.kind is not None else None,
        "reason": clean_text(verdict.reason),
        "recipient": clean_text(bounce.original_recipient),
        "action": clean_text(bounce.action),
        "status": clean_text(bounce.status),
        "diagnostic": clean_text(bounce.diagnostic),
    }


def _stored(row: tuple[Any, ...]) -> StoredMessage:
    fields = dict(zip(_MESSAGE_COLUMNS, row[: len(_MESSAGE_COLUMNS)], strict=True))
    fields["status"] = MessageStatus(fields["status"])
    auth = dict(zip(_AUTH_COLUMNS, row[len(_MESSAGE_COLUMNS) :], strict=True))
    if auth["auth_spf"] is not None:
        fields["auth"] = AuthVerdict(
            spf=auth["auth_spf"],
            dkim=tuple((d["domain"], d["selector"], d["result"]) for d in auth["auth_dkim"] or ()),
            dmarc=auth["auth_dmarc"],
            dmarc_policy=auth["auth_dmarc_policy"],
            arc=auth["auth_arc"],
            from_domain=auth["auth_from_domain"],
            from_address=auth["auth_from_address"],
            aligned=bool(auth["auth_aligned"]),
            temporary=bool(auth["auth_temporary"]),
            summary=auth["auth_results"] or "",
        )
    return StoredMessage(**fields)


def _attachment(row: tuple[Any, ...]) -> Attachment:
    part_path, content_type, disposition, filename, size, sha256, object_key, notes, detected = row
    return Attachment(
        part_path=part_path,
        content_type=content_type,
        disposition=disposition,
        filename=filename,
        size_bytes=size,
        sha256=sha256,
        object_key=object_key,
        notes=tuple(notes),
        detected_type=detected,
    )
