-- The decoded text/plain and text/html bodies of a message (docs/api.md,
-- ingest_core/bodies.py), written by extraction in the transaction that writes
-- the attachment manifest; a re-extraction replaces the row. No row: the message
-- was not extracted yet (or before bodies were kept: ingest replay backfills).

CREATE TABLE message_body (
    inbound_message_id  uuid        PRIMARY KEY REFERENCES inbound_message (id) ON DELETE CASCADE,
    org_id              uuid        NOT NULL REFERENCES organization (id),
    text_body           text,
    html_body           text,
    text_from_html      boolean     NOT NULL DEFAULT false,
    reply_text          text,
    has_quoted          boolean     NOT NULL DEFAULT false,
    truncated           boolean     NOT NULL DEFAULT false,
    parser_version      text        NOT NULL,
    extracted_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX message_body_org_id ON message_body (org_id);
