-- Initial schema (docs/schema.md). Applied once, in one transaction, by migrate().

CREATE TABLE organization (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text        NOT NULL UNIQUE
                            CONSTRAINT organization_slug_format
                            CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text        NOT NULL,
    status      text        NOT NULL DEFAULT 'active'
                            CONSTRAINT organization_status_valid
                            CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inbound_message (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid        NOT NULL REFERENCES organization (id),
    source              text        NOT NULL DEFAULT 'EMAIL',
    source_message_id   text        NOT NULL,
    message_id_header   text,
    sha256              text        NOT NULL,
    size_bytes          bigint      NOT NULL CHECK (size_bytes >= 0),
    raw_object_key      text        NOT NULL,
    envelope_from       text        NOT NULL,
    content_sha256      text        NOT NULL,
    envelope_recipient  text        NOT NULL,
    subject             text,
    from_header         text,
    received_at         timestamptz NOT NULL DEFAULT now(),
    client_address      text,
    client_helo         text,
    postfix_queue_id    text,
    status              text        NOT NULL DEFAULT 'RECEIVED'
                                    CONSTRAINT inbound_message_status_valid
                                    CHECK (status IN ('RECEIVED', 'PROCESSING', 'PROCESSED',
                                                      'FAILED', 'QUARANTINED')),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_at          timestamptz,
    last_error          text,
    parser_version      text,
    processed_at        timestamptz,
    CONSTRAINT inbound_message_source_unique UNIQUE (org_id, source, source_message_id)
);

-- The sweeper: RECEIVED rows by age, PROCESSING rows by claim age.
CREATE INDEX inbound_message_status_received_at ON inbound_message (status, received_at);
CREATE INDEX inbound_message_status_claimed_at ON inbound_message (status, claimed_at);
-- A tenant's messages, newest first (`ingest messages list`). The unique constraint
-- above also leads with org_id, but cannot serve an ordering by time.
CREATE INDEX inbound_message_org_received_at ON inbound_message (org_id, received_at DESC);

CREATE TABLE inbound_attachment (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    inbound_message_id  uuid        NOT NULL REFERENCES inbound_message (id) ON DELETE CASCADE,
    org_id              uuid        NOT NULL REFERENCES organization (id),
    part_path           text        NOT NULL,
    filename            text,
    content_type        text        NOT NULL,
    disposition         text,
    size_bytes          bigint      NOT NULL CHECK (size_bytes >= 0),
    sha256              text        NOT NULL,
    object_key          text        NOT NULL,
    -- Extraction remarks (e.g. a filename that had to be repaired): Attachment.notes.
    notes               text[]      NOT NULL DEFAULT '{}',
    CONSTRAINT inbound_attachment_part_unique UNIQUE (inbound_message_id, part_path)
);

CREATE INDEX inbound_attachment_org_id ON inbound_attachment (org_id);
