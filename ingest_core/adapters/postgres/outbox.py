"""The transactional outbox on Postgres (docs/events.md).

:func:`emit` runs on the connection of the transaction that changes the
message's state, so the event and its change commit or roll back together. One
statement writes the event, its thin payload built from the rows as they stand
in that transaction, and a delivery for every live endpoint of the tenant that
subscribes to the type (:func:`emit_deleted`: the same for a message being
removed, whose payload names it and nothing of its content). The failure text
of a FAILED message stays ours (it may name internals; the API does not show it
either).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_core.events import MAX_LISTED_ATTACHMENTS, MAX_TEXT_CHARS

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    import psycopg

    from ingest_core.events import EventType

_EMIT = f"""
WITH emitted AS (
    INSERT INTO event (org_id, message_id, type, payload)
    SELECT m.org_id, m.id, %(type)s::text, jsonb_build_object(
        'type', %(type)s::text,
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', jsonb_build_object(
            'message_id', m.id,
            'tenant', o.slug,
            'message_id_header', left(m.message_id_header, {MAX_TEXT_CHARS}),
            'from', left(m.from_header, {MAX_TEXT_CHARS}),
            'envelope_from', left(m.envelope_from, {MAX_TEXT_CHARS}),
            'subject', left(m.subject, {MAX_TEXT_CHARS}),
            'received_at', m.received_at,
            'status', m.status,
            'url', %(base)s::text || '/v1/messages/' || m.id,
            'raw_url', %(base)s::text || '/v1/messages/' || m.id || '/raw',
            'sender', CASE WHEN m.auth_spf IS NULL THEN NULL ELSE jsonb_build_object(
                'spf', m.auth_spf, 'dmarc', m.auth_dmarc, 'aligned', m.auth_aligned,
                'from_domain', m.auth_from_domain) END,
            'automated', m.automated_kind,
            'quarantine_reason', CASE WHEN m.status = 'QUARANTINED'
                THEN left(m.quarantine_reason, {MAX_TEXT_CHARS}) END,
            'attachment_count', a.count,
            'attachments_truncated', a.count > {MAX_LISTED_ATTACHMENTS},
            'attachments', a.listed))
    FROM inbound_message m
    JOIN organization o ON o.id = m.org_id
    CROSS JOIN LATERAL (
        SELECT (SELECT count(*) FROM inbound_attachment WHERE inbound_message_id = m.id) AS count,
               COALESCE(jsonb_agg(jsonb_build_object(
                   'id', f.id,
                   'filename', left(f.filename, {MAX_TEXT_CHARS}),
                   'content_type', f.content_type,
                   'detected_type', f.detected_content_type,
                   'size', f.size_bytes,
                   'sha256', f.sha256,
                   'url', %(base)s::text || '/v1/messages/' || m.id || '/attachments/' || f.id)
                   ORDER BY f.part_path COLLATE "C"), '[]'::jsonb) AS listed
        FROM (SELECT * FROM inbound_attachment WHERE inbound_message_id = m.id
              ORDER BY part_path COLLATE "C" LIMIT {MAX_LISTED_ATTACHMENTS}) f
    ) a
    WHERE m.id = ANY (%(ids)s::uuid[])
    RETURNING id, org_id, type
)
INSERT INTO webhook_delivery (event_id, endpoint_id)
SELECT emitted.id, w.id FROM emitted
JOIN webhook_endpoint w ON w.org_id = emitted.org_id AND w.disabled_at IS NULL
    AND (cardinality(w.event_types) = 0 OR emitted.type = ANY (w.event_types))
"""


def emit(
    conn: psycopg.Connection[Any],
    message_ids: Sequence[uuid.UUID],
    event_type: EventType,
    base_url: str,
) -> None:
    """Write one ``event_type`` event for each of the messages, in ``conn``'s
    transaction (one statement however many: a batch costs one round trip)."""
    conn.execute(_EMIT, {"type": event_type.value, "ids": list(message_ids), "base": base_url})


_EMIT_DELETED = """
WITH emitted AS (
    INSERT INTO event (org_id, message_id, type, payload)
    SELECT m.org_id, m.id, 'message.deleted', jsonb_build_object(
        'type', 'message.deleted',
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', jsonb_build_object(
            'message_id', m.id, 'tenant', o.slug, 'reason', %(reason)s::text))
    FROM inbound_message m JOIN organization o ON o.id = m.org_id
    WHERE m.id = ANY (%(ids)s::uuid[])
    RETURNING id, org_id, type
)
INSERT INTO webhook_delivery (event_id, endpoint_id)
SELECT emitted.id, w.id FROM emitted
JOIN webhook_endpoint w ON w.org_id = emitted.org_id AND w.disabled_at IS NULL
    AND (cardinality(w.event_types) = 0 OR emitted.type = ANY (w.event_types))
"""

DELETE_REASONS = ("retention", "erasure")


def emit_deleted(
    conn: psycopg.Connection[Any], message_ids: Sequence[uuid.UUID], reason: str
) -> None:
    """One ``message.deleted`` event (message id, tenant, ``reason``: retention or
    erasure) for each of the messages, in ``conn``'s transaction, before their
    rows go: the payload is read from them."""
    if reason not in DELETE_REASONS:
        raise ValueError(f"unknown removal reason {reason!r}")
    conn.execute(_EMIT_DELETED, {"ids": list(message_ids), "reason": reason})
