-- The removals a purge starts with (ingest_core/lifecycle.py finish_unconfirmed):
-- candidates and markers without a confirmed delete, oldest first, read without
-- scanning the confirmed markers kept for their refusal window. Needs only 0008.
CREATE INDEX object_removal_unconfirmed ON object_removal (marked_at) WHERE removed_at IS NULL;
