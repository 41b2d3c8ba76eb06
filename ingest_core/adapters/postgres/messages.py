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

from ingest_core.adapters.postgres.bodies import write_body
from ingest_core.adapters.postgres.common import Pool, clean_text, database_errors
from ingest_core.adapters.postgres.message_sql import (
    ATTACHMENT_SELECT,
    CLAIM,
    DELETE_OTHER_ATTACHMENTS,
    FIND_BY_SOURCE,
    INSERT_MESSAGE,
    MARK_PROCESSED,
    MAX_ERROR_CHARS,
    MESSAGE_SELECT,
    RECORD_AUTH,
    RECORD_AUTOMATED,
    UPSERT_ATTACHMENT,
    attachment_from_row,
    attachment_params,
    auth_params,
    automated_params,
    insert_params,
    stored_message,
)
from ingest_core.adapters.postgres.outbox import emit
from ingest_core.errors import RecordRejected, StoreUnavailable
from ingest_core.events import EventType
from ingest_core.model import (
    Attachment,
    AuthVerdict,
    AutomatedVerdict,
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


class PostgresMessageRepository:
    """``MessageRepository`` on a shared connection pool. Raises StoreUnavailable."""

    def __init__(self, pool: Pool, *, api_url: str = "http://127.0.0.1:9326") -> None:
        self._pool = pool
        self._api_url = api_url.rstrip("/")  # the base of the URLs in event payloads

    def _emit(self, conn: psycopg.Connection[Any], message_id: uuid.UUID, kind: EventType) -> None:
        emit(conn, [message_id], kind, self._api_url)

    def record_received(self, message: NewMessage) -> Recorded:
        with database_errors("record message"), self._pool.connection(deadline=True) as conn:
            return self._record(conn, [message])[0]

    def record_many(self, messages: Sequence[NewMessage]) -> list[Recorded]:
        """Several messages in one transaction and one commit (group commit)."""
        try:
            with (
                database_errors("record messages"),
                self._pool.connection(deadline=True) as conn,
            ):
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
        params = [insert_params(message) for message in messages]
        firsts = _insert_all(conn, params)
        recorded = [
            self._settle(conn, each, first) for each, first in zip(params, firsts, strict=True)
        ]
        new = [r.id for r in recorded if r.kind is not RecordKind.DUPLICATE]
        if new:
            emit(conn, new, EventType.RECEIVED, self._api_url)
        return recorded

    def _settle(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], inserted: Any
    ) -> Recorded:
        """What the first insert of a message came to: its new row, or (when the
        key was taken) a duplicate of the same content or a row of its own."""
        if inserted is not None:
            return Recorded(RecordKind.CREATED, inserted)
        existing = self._find(conn, params)
        if existing[1] == params["content_sha256"]:
            return Recorded(RecordKind.DUPLICATE, existing[0])
        # Same Message-ID, other content: its own row under a derived id.
        params["source_message_id"] = (
            f"{params['source_message_id']}#{params['content_sha256'][:16]}"
        )
        row = conn.execute(INSERT_MESSAGE, params).fetchone()
        if row is not None:
            return Recorded(RecordKind.CONFLICT_STORED, row[0])
        return Recorded(RecordKind.DUPLICATE, self._find(conn, params)[0])

    @staticmethod
    def _find(conn: psycopg.Connection[Any], params: dict[str, Any]) -> tuple[Any, ...]:
        """The row an insert just conflicted with (rows are never deleted, and
        READ COMMITTED lets this statement see the committed winner)."""
        row: tuple[Any, ...] | None = conn.execute(
            FIND_BY_SOURCE,
            (params["org_id"], params["source"], params["source_message_id"]),
        ).fetchone()
        if row is None:  # pragma: no cover - only if a row was deleted in between
            raise StoreUnavailable("record message: the conflicting row vanished; retry")
        return row

    def get(self, org_id: uuid.UUID, message_id: uuid.UUID) -> StoredMessage | None:
        with database_errors("read message"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {MESSAGE_SELECT} FROM inbound_message WHERE id = %s AND org_id = %s",
                (message_id, org_id),
            ).fetchone()
        return stored_message(row) if row is not None else None

    def claim(self, message_id: uuid.UUID, lease_s: float) -> StoredMessage | None:
        """The conditional UPDATE is the lock: of two concurrent claimers, the
        second re-checks the row after the first commits and matches nothing."""
        with database_errors("claim message"), self._pool.connection() as conn:
            row = conn.execute(CLAIM, (message_id, float(lease_s))).fetchone()
        return stored_message(row) if row is not None else None

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
        rows = [attachment_params(message_id, a) for a in attachments]
        part_paths = [a.part_path for a in attachments]
        with database_errors("finish message"), self._pool.connection() as conn:
            conn.execute(MARK_PROCESSED, (parser_version, message_id))
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(UPSERT_ATTACHMENT, rows)
            conn.execute(DELETE_OTHER_ATTACHMENTS, (message_id, part_paths))
            if body is not None:
                write_body(conn, message_id, body, parser_version)
            self._emit(conn, message_id, EventType.PROCESSED)

    def fail(
        self, message_id: uuid.UUID, error: str, *, final: bool, retry_in_s: float = 0.0
    ) -> None:
        status = MessageStatus.FAILED if final else MessageStatus.RECEIVED
        retry_in = None if final else max(float(retry_in_s), 0.0)
        with database_errors("record failure"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = %s, last_error = %s, claimed_at = NULL,"
                " retry_at = now() + make_interval(secs => %s) WHERE id = %s",
                (status.value, clean_text(error[:MAX_ERROR_CHARS]), retry_in, message_id),
            )
            if final and cursor.rowcount == 1:
                self._emit(conn, message_id, EventType.FAILED)

    def record_auth(self, message_id: uuid.UUID, verdict: AuthVerdict) -> None:
        with database_errors("record sender authentication"), self._pool.connection() as conn:
            conn.execute(RECORD_AUTH, auth_params(message_id, verdict))

    def record_automated(self, message_id: uuid.UUID, verdict: AutomatedVerdict) -> None:
        with database_errors("record automated-mail verdict"), self._pool.connection() as conn:
            conn.execute(RECORD_AUTOMATED, automated_params(message_id, verdict))

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
                " attempts = 0, claimed_at = NULL, retry_at = NULL"
                " WHERE id = %s AND status = 'QUARANTINED'",
                (message_id,),
            )
            if cursor.rowcount != 1:
                return False
            self._emit(conn, message_id, EventType.RELEASED)
            return True

    def list_attachments(self, org_id: uuid.UUID, message_id: uuid.UUID) -> list[Attachment]:
        with database_errors("list attachments"), self._pool.connection() as conn:
            rows = conn.execute(ATTACHMENT_SELECT, (message_id, org_id)).fetchall()
        return [attachment_from_row(row) for row in rows]

    def stale(self, received_before: datetime, claimed_before: datetime) -> list[uuid.UUID]:
        with database_errors("find stale messages"), self._pool.connection() as conn:
            rows = conn.execute(
                # The first bound uses the (status, received_at) index; GREATEST
                # ignores a NULL retry_at.
                "SELECT id FROM inbound_message WHERE status = 'RECEIVED'"
                " AND received_at < %(received)s AND GREATEST(received_at, retry_at) < %(received)s"
                " UNION ALL"
                " SELECT id FROM inbound_message"
                " WHERE status = 'PROCESSING' AND claimed_at < %(claimed)s",
                {"received": received_before, "claimed": claimed_before},
            ).fetchall()
        return [row[0] for row in rows]

    def reset_for_replay(self, message_id: uuid.UUID) -> bool:
        with database_errors("reset message"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE inbound_message SET status = 'RECEIVED', attempts = 0, claimed_at = NULL,"
                " retry_at = NULL WHERE id = %s",
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


def _insert_all(conn: psycopg.Connection[Any], params: Sequence[dict[str, Any]]) -> list[Any]:
    """The new row's id for each message, None where its key was taken: one
    statement each, sent together in one pipeline (one round trip for the batch
    rather than one per message)."""
    if not params:
        return []
    if len(params) == 1:
        row = conn.execute(INSERT_MESSAGE, params[0]).fetchone()
        return [row[0] if row is not None else None]
    ids: list[Any] = []
    with conn.cursor() as cursor:
        cursor.executemany(INSERT_MESSAGE, params, returning=True)
        while True:
            row = cursor.fetchone()
            ids.append(row[0] if row is not None else None)
            if not cursor.nextset():
                break
    return ids
