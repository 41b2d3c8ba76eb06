-- Automated mail (docs/automated-mail.md): the worker classifies each message
-- before extraction as auto-reply, bounce, feedback-report, list or bulk (NULL:
-- ordinary mail, or not classified yet; rows received before this migration stay
-- NULL until replayed), with the field or structure that decided, and for
-- bounces what the delivery-status part says.

ALTER TABLE inbound_message
    ADD COLUMN automated_kind             text
        CONSTRAINT inbound_message_automated_kind_valid
        CHECK (automated_kind IN ('auto-reply', 'bounce', 'feedback-report', 'list', 'bulk')),
    ADD COLUMN automated_reason           text,
    ADD COLUMN automated_checked_at       timestamptz,
    ADD COLUMN bounce_original_recipient  text,  -- Original- or Final-Recipient address
    ADD COLUMN bounce_action              text,  -- failed|delayed|delivered|relayed|expanded
    ADD COLUMN bounce_status              text,  -- RFC 3463 code, e.g. 5.1.1
    ADD COLUMN bounce_diagnostic          text;  -- Diagnostic-Code, cleaned, at most 500 chars

-- A message released from quarantine (released_at, migration 0002) is never held
-- again by any check, automated-mail policy included, replays included.

-- Per tenant and kind: 'hold' (QUARANTINED with the reason) or 'extract'.
-- Defaults, for EXISTING tenants (inserted below) and NEW ones (the trigger):
-- auto-reply, bounce, feedback-report, list -> hold; bulk -> extract (ERPs send
-- real orders with Precedence: bulk, so bulk is flagged only). Existing tenants
-- therefore start holding auto-replies, bounces, feedback reports and list mail
-- from the moment this migration is applied; `ingest tenants automated SLUG KIND
-- extract` turns a kind back to extraction.
CREATE TABLE tenant_automated_policy (
    org_id  uuid NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    kind    text NOT NULL
            CONSTRAINT tenant_automated_policy_kind_valid
            CHECK (kind IN ('auto-reply', 'bounce', 'feedback-report', 'list', 'bulk')),
    action  text NOT NULL
            CONSTRAINT tenant_automated_policy_action_valid
            CHECK (action IN ('extract', 'hold')),
    PRIMARY KEY (org_id, kind)
);

CREATE FUNCTION automated_policy_defaults(org uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO tenant_automated_policy (org_id, kind, action)
    VALUES (org, 'auto-reply', 'hold'), (org, 'bounce', 'hold'),
           (org, 'feedback-report', 'hold'), (org, 'list', 'hold'), (org, 'bulk', 'extract')
    ON CONFLICT DO NOTHING
$$;

CREATE FUNCTION organization_automated_policy_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM automated_policy_defaults(NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER organization_automated_policy_defaults
    AFTER INSERT ON organization
    FOR EACH ROW EXECUTE FUNCTION organization_automated_policy_defaults();

SELECT automated_policy_defaults(id) FROM organization;

-- `/metrics`: automated messages per tenant and kind.
CREATE INDEX inbound_message_org_automated_kind ON inbound_message (org_id, automated_kind)
    WHERE automated_kind IS NOT NULL;
