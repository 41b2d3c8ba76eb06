-- message.deleted (docs/events.md): when retention or erasure removes a message,
-- an event with a thin payload (message id, tenant, reason) goes out to the
-- tenant's subscribed endpoints. Its row outlives the message it names, so an
-- event keeps its message id without a foreign key; the removal itself deletes
-- the message's other events (and their deliveries, by cascade), which carry
-- its data, in the transaction that deletes the message.
ALTER TABLE event DROP CONSTRAINT event_message_id_fkey;

ALTER TABLE event DROP CONSTRAINT event_type_valid;
ALTER TABLE event ADD CONSTRAINT event_type_valid CHECK (type IN (
    'message.received', 'message.processed', 'message.quarantined',
    'message.failed', 'message.released', 'message.deleted'));
