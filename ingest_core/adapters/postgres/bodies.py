"""Message bodies in Postgres: the ``message_body`` table (migration 0011).
Written inside the repository's ``finish`` transaction; read by the tenant API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_core.bodies import MessageBody

if TYPE_CHECKING:
    import uuid

    import psycopg

_UPSERT = """
INSERT INTO message_body (inbound_message_id, org_id, text_body, html_body, text_from_html,
                          reply_text, has_quoted, truncated, parser_version)
SELECT id, org_id, %(text)s, %(html)s, %(from_html)s, %(reply)s, %(quoted)s, %(truncated)s,
       %(parser)s
FROM inbound_message WHERE id = %(id)s
ON CONFLICT (inbound_message_id) DO UPDATE SET
    text_body = EXCLUDED.text_body, html_body = EXCLUDED.html_body,
    text_from_html = EXCLUDED.text_from_html, reply_text = EXCLUDED.reply_text,
    has_quoted = EXCLUDED.has_quoted, truncated = EXCLUDED.truncated,
    parser_version = EXCLUDED.parser_version, extracted_at = now()
"""

_SELECT = """
SELECT text_body, html_body, text_from_html, reply_text, has_quoted, truncated
FROM message_body WHERE org_id = %s AND inbound_message_id = %s
"""


def write_body(
    conn: psycopg.Connection[Any],
    message_id: uuid.UUID,
    body: MessageBody,
    parser_version: str,
) -> None:
    conn.execute(
        _UPSERT,
        {
            "id": message_id,
            "text": body.text,
            "html": body.html,
            "from_html": body.text_from_html,
            "reply": body.reply,
            "quoted": body.quoted,
            "truncated": body.truncated,
            "parser": parser_version,
        },
    )


def read_body(
    conn: psycopg.Connection[Any], org_id: uuid.UUID, message_id: uuid.UUID
) -> MessageBody | None:
    row = conn.execute(_SELECT, (org_id, message_id)).fetchone()
    if row is None:
        return None
    text, html, from_html, reply, quoted, truncated = row
    return MessageBody(text, html, from_html, reply, quoted, truncated)
