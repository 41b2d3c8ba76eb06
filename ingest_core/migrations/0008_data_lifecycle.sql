-- Data lifecycle (docs/operations.md#data-lifecycle): per-tenant retention,
-- legal holds, and the removal markers that make deleting content-addressed
-- objects safe against a message that reuses one at the same moment.

-- Retention: retention_days NULL inherits INGEST_RETENTION_DAYS; retention_off
-- keeps the tenant's mail whatever the default says.
ALTER TABLE organization
    ADD COLUMN retention_days integer
        CONSTRAINT organization_retention_days_positive CHECK (retention_days > 0),
    ADD COLUMN retention_off boolean NOT NULL DEFAULT false;

-- A hold on a whole tenant (message_id NULL) or on one message: held data is
-- never removed, by retention or by erasure. removed_at ends a hold; rows stay.
CREATE TABLE legal_hold (
    id          bigserial   PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES organization (id),
    message_id  uuid,                    -- no foreign key: a removed hold outlives its message
    reason      text        NOT NULL CONSTRAINT legal_hold_reason_given CHECK (reason <> ''),
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_by  text,
    removed_at  timestamptz
);

CREATE INDEX legal_hold_live ON legal_hold (org_id, message_id) WHERE removed_at IS NULL;

-- Retention's scan: a tenant's oldest messages first.
CREATE INDEX inbound_message_org_received_at_asc ON inbound_message (org_id, received_at, id);
CREATE INDEX inbound_message_raw_object_key ON inbound_message (raw_object_key);
CREATE INDEX inbound_attachment_object_key ON inbound_attachment (object_key);

-- An object key being removed. Written (under the key's advisory lock, after
-- checking that no row references the key) before the object is deleted; until
-- refuse_until, a new row that references the key is refused, so a message that
-- found the object still there (a put that skipped an existing key, extraction's
-- exists()) is retried by its sender or the worker instead of pointing at bytes
-- about to vanish. removed_at: the delete succeeded.
CREATE TABLE object_removal (
    object_key    text        PRIMARY KEY,
    org_id        uuid        NOT NULL,
    marked_at     timestamptz NOT NULL DEFAULT now(),
    refuse_until  timestamptz NOT NULL,
    removed_at    timestamptz
);

CREATE FUNCTION object_key_in_use(key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(key, 0));
    IF EXISTS (SELECT 1 FROM object_removal r
               WHERE r.object_key = key AND r.refuse_until > clock_timestamp()) THEN
        RAISE EXCEPTION 'object % is being removed; retry later', key
            USING ERRCODE = 'lock_not_available';
    END IF;
END
$$;

CREATE FUNCTION inbound_message_object_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM object_key_in_use(NEW.raw_object_key);
    RETURN NEW;
END
$$;

CREATE FUNCTION inbound_attachment_object_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM object_key_in_use(NEW.object_key);
    RETURN NEW;
END
$$;

CREATE TRIGGER inbound_message_object_in_use
    BEFORE INSERT OR UPDATE OF raw_object_key ON inbound_message
    FOR EACH ROW EXECUTE FUNCTION inbound_message_object_in_use();

CREATE TRIGGER inbound_attachment_object_in_use
    BEFORE INSERT OR UPDATE OF object_key ON inbound_attachment
    FOR EACH ROW EXECUTE FUNCTION inbound_attachment_object_in_use();
