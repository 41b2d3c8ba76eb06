-- Sender authentication verdicts and per-tenant sender policy (issue: sender
-- authentication). Verdicts are computed by the worker as the first extraction
-- step; NULL means "not checked yet" (rows received before this migration, or
-- still waiting for the worker).

ALTER TABLE inbound_message
    ADD COLUMN auth_spf           text,   -- pass|fail|softfail|neutral|none|temperror|permerror
    ADD COLUMN auth_dkim          jsonb,  -- [{"domain", "selector", "result"}, ...]
    ADD COLUMN auth_dmarc         text,   -- pass|fail|none|temperror|permerror
    ADD COLUMN auth_dmarc_policy  text,   -- the From domain's p= (none|quarantine|reject)
    ADD COLUMN auth_arc           text,   -- pass|fail|none
    ADD COLUMN auth_from_domain   text,
    ADD COLUMN auth_from_address  text,   -- the single RFC5322.From address, lower case
    ADD COLUMN auth_aligned       boolean,-- an aligned SPF or DKIM pass for auth_from_domain
    ADD COLUMN auth_results       text,   -- Authentication-Results-style summary
    ADD COLUMN auth_temporary     boolean,-- a DNS failure took part: checked again on retry
    ADD COLUMN auth_checked_at    timestamptz,
    ADD COLUMN quarantine_reason  text,
    ADD COLUMN released_at        timestamptz;

-- monitor: verdicts are recorded, nothing is held back (the default).
-- dmarc: a message whose From domain does not pass DMARC is QUARANTINED.
-- allowlist: a message is QUARANTINED unless its From address matches one of the
--   tenant's sender patterns AND the From domain is authenticated (aligned SPF or
--   DKIM pass), so a forged From cannot pass by naming an allowed address.
ALTER TABLE organization
    ADD COLUMN sender_policy text NOT NULL DEFAULT 'monitor'
        CONSTRAINT organization_sender_policy_valid
        CHECK (sender_policy IN ('monitor', 'dmarc', 'allowlist'));

CREATE TABLE tenant_sender (
    org_id      uuid        NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    -- '*@example.com', 'buyer@example.com' or '*@*.example.com'; lower case.
    pattern     text        NOT NULL
                            CONSTRAINT tenant_sender_pattern_format
                            CHECK (pattern ~ '^[^@\s]+@[^@\s]+$' AND pattern = lower(pattern)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, pattern)
);

CREATE INDEX inbound_message_org_status ON inbound_message (org_id, status);
