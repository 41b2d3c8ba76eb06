-- Events to the order product (docs/events.md): the transactional outbox, the
-- tenants' webhook endpoints and the delivery log.
--
-- An event row is written in the same transaction as the state change it
-- reports, and with it one delivery per endpoint of the tenant that was live
-- and subscribed then (an endpoint added later never sees earlier events).

CREATE TABLE event (
    id          text        PRIMARY KEY DEFAULT 'evt_' || replace(gen_random_uuid()::text, '-', '')
                            CONSTRAINT event_id_format CHECK (id ~ '^evt_[0-9a-f]{32}$'),
    org_id      uuid        NOT NULL REFERENCES organization (id),
    message_id  uuid        NOT NULL REFERENCES inbound_message (id) ON DELETE CASCADE,
    type        text        NOT NULL
                            CONSTRAINT event_type_valid CHECK (type IN (
                                'message.received', 'message.processed', 'message.quarantined',
                                'message.failed', 'message.released')),
    payload     jsonb       NOT NULL,                  -- the body sent, thin (< 20 KB)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX event_message ON event (message_id, created_at);
CREATE INDEX event_org_created_at ON event (org_id, created_at);

CREATE TABLE webhook_endpoint (
    id              text        PRIMARY KEY CONSTRAINT webhook_endpoint_id_format
                                CHECK (id ~ '^ep_[0-9a-f]{16}$'),
    org_id          uuid        NOT NULL REFERENCES organization (id),
    url             text        NOT NULL,
    event_types     text[]      NOT NULL DEFAULT '{}',  -- empty: every type
    secret          text        NOT NULL,               -- encrypted with INGEST_SECRET_KEY
    previous_secret text,                               -- signs beside it until previous_until
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);

CREATE INDEX webhook_endpoint_org ON webhook_endpoint (org_id) WHERE disabled_at IS NULL;

CREATE TABLE webhook_delivery (
    id              bigserial   PRIMARY KEY,
    event_id        text        NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'PENDING'
                                CONSTRAINT webhook_delivery_status_valid
                                CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,                        -- a dispatcher's lease while it sends
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CONSTRAINT webhook_delivery_unique UNIQUE (event_id, endpoint_id)
);

-- The dispatcher's claim: due pending deliveries by time.
CREATE INDEX webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_delivery_endpoint ON webhook_delivery (endpoint_id, created_at);

CREATE TABLE webhook_attempt (
    id           bigserial   PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES webhook_delivery (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,                               -- NULL: no HTTP answer
    duration_ms  integer     NOT NULL CHECK (duration_ms >= 0),
    error        text
);

CREATE INDEX webhook_attempt_delivery ON webhook_attempt (delivery_id, at);
