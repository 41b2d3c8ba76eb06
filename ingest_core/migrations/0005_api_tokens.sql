-- API tokens (docs/api.md): per tenant, or admin (org_id NULL). The secret is
-- stored only as its SHA-256 (hex); the token id is the public part of
-- ing_<id>_<secret>. A name is unique among a tenant's live tokens.

CREATE TABLE api_token (
    id              text        PRIMARY KEY CONSTRAINT api_token_id_format
                                CHECK (id ~ '^[0-9a-f]{16}$'),
    org_id          uuid        REFERENCES organization (id),
    name            text        NOT NULL,
    secret_sha256   text        NOT NULL CONSTRAINT api_token_secret_format
                                CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

CREATE UNIQUE INDEX api_token_live_name
    ON api_token (COALESCE(org_id, '00000000-0000-0000-0000-000000000000'::uuid), name)
    WHERE revoked_at IS NULL;
