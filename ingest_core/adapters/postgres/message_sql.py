"""The statements of the Postgres message repository and the mapping of its
rows to and from the domain values (``messages`` runs them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from ingest_core.adapters.postgres.common import clean_text
from ingest_core.model import (
    Attachment,
    AuthVerdict,
    AutomatedVerdict,
    BounceDetails,
    MessageStatus,
    NewMessage,
    StoredMessage,
)

if TYPE_CHECKING:
    import uuid

MESSAGE_COLUMNS = (
    "id", "org_id", "source_message_id", "sha256", "content_sha256", "size_bytes",
    "raw_object_key", "envelope_from", "envelope_recipient", "subject", "from_header",
    "received_at", "status", "attempts", "claimed_at", "last_error", "parser_version",
    "processed_at", "client_address", "client_helo", "postfix_queue_id",
    "quarantine_reason", "released_at",
)  # fmt: skip
AUTH_COLUMNS = (
    "auth_spf", "auth_dkim", "auth_dmarc", "auth_dmarc_policy", "auth_arc",
    "auth_from_domain", "auth_from_address", "auth_aligned", "auth_temporary", "auth_results",
)  # fmt: skip
MESSAGE_SELECT = ", ".join(MESSAGE_COLUMNS + AUTH_COLUMNS)

RECORD_AUTH = """
UPDATE inbound_message SET
    auth_spf = %(spf)s, auth_dkim = %(dkim)s, auth_dmarc = %(dmarc)s,
    auth_dmarc_policy = %(dmarc_policy)s, auth_arc = %(arc)s,
    auth_from_domain = %(from_domain)s, auth_from_address = %(from_address)s,
    auth_aligned = %(aligned)s, auth_temporary = %(temporary)s,
    auth_results = %(summary)s, auth_checked_at = now()
WHERE id = %(id)s
"""

RECORD_AUTOMATED = """
UPDATE inbound_message SET
    automated_kind = %(kind)s, automated_reason = %(reason)s, automated_checked_at = now(),
    bounce_original_recipient = %(recipient)s, bounce_action = %(action)s,
    bounce_status = %(status)s, bounce_diagnostic = %(diagnostic)s
WHERE id = %(id)s
"""

INSERT_MESSAGE = """
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

FIND_BY_SOURCE = """
SELECT id, content_sha256 FROM inbound_message
WHERE org_id = %s AND source = %s AND source_message_id = %s
"""

CLAIM = f"""
UPDATE inbound_message
SET status = 'PROCESSING', attempts = attempts + 1, claimed_at = now(), retry_at = NULL
WHERE id = %s
  AND (status = 'RECEIVED'
       OR (status = 'PROCESSING' AND claimed_at < now() - make_interval(secs => %s)))
RETURNING {MESSAGE_SELECT}
"""

# The attachment takes org_id from its message row, so the two cannot disagree.
# A part path seen before keeps its row (and id); everything else is replaced.
UPSERT_ATTACHMENT = """
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

DELETE_OTHER_ATTACHMENTS = """
DELETE FROM inbound_attachment
WHERE inbound_message_id = %s AND part_path <> ALL (%s::text[])
"""

MARK_PROCESSED = """
UPDATE inbound_message
SET status = 'PROCESSED', processed_at = now(), parser_version = %s, last_error = NULL
WHERE id = %s
"""

ATTACHMENT_SELECT = """
SELECT part_path, content_type, disposition, filename, size_bytes, sha256, object_key, notes,
       detected_content_type
FROM inbound_attachment
WHERE inbound_message_id = %s AND org_id = %s
ORDER BY part_path COLLATE "C"
"""

# Bounds what one failure can add to a row; the full error is in the worker's log.
MAX_ERROR_CHARS = 4000


def insert_params(message: NewMessage) -> dict[str, Any]:
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


def attachment_params(message_id: uuid.UUID, attachment: Attachment) -> tuple[Any, ...]:
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


def auth_params(message_id: uuid.UUID, verdict: AuthVerdict) -> dict[str, Any]:
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


def automated_params(message_id: uuid.UUID, verdict: AutomatedVerdict) -> dict[str, Any]:
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


def stored_message(row: tuple[Any, ...]) -> StoredMessage:
    fields = dict(zip(MESSAGE_COLUMNS, row[: len(MESSAGE_COLUMNS)], strict=True))
    fields["status"] = MessageStatus(fields["status"])
    auth = dict(zip(AUTH_COLUMNS, row[len(MESSAGE_COLUMNS) :], strict=True))
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


def attachment_from_row(row: tuple[Any, ...]) -> Attachment:
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
