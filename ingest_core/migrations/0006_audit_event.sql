-- Operator actions (docs/schema.md#audit_event): who did what, when, to what.
-- Written by the operator commands (release, replay, tenant and policy changes,
-- exports) and by later features (API tokens, endpoints, erasure) through the
-- AuditLog port (ingest_core/audit.py); read by `ingest audit`. Rows are never
-- updated. org_slug is kept as written, so an event outlives its tenant.
CREATE TABLE audit_event (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,              -- the OS user who ran the command
    action    text        NOT NULL               -- e.g. message.release, tenant.policy
              CONSTRAINT audit_event_action_format CHECK (action ~ '^[a-z][a-z0-9_.-]*$'),
    org_slug  text,                              -- the tenant it concerned; NULL: several or none
    scope     jsonb       NOT NULL DEFAULT '{}', -- what it applied to: ids, filters, settings
    count     integer     NOT NULL DEFAULT 0     -- how many things it changed
              CONSTRAINT audit_event_count_positive CHECK (count >= 0)
);

CREATE INDEX audit_event_at ON audit_event (at);
CREATE INDEX audit_event_org_at ON audit_event (org_slug, at) WHERE org_slug IS NOT NULL;
