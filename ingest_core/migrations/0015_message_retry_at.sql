-- When a message that failed extraction for a temporary reason (store, database
-- or DNS trouble) is due for its next attempt: the worker's scheduled retry runs
-- then, and the sweep (ingest_core/operations.py) leaves the row alone until
-- INGEST_SWEEP_AGE_S after it, as it does for a new row after received_at.
-- Without it every sweep re-enqueued such a row at once, and the retries that
-- should back off over minutes ran at the sweep's pace. NULL: no retry pending
-- (a claim clears it).
ALTER TABLE inbound_message ADD COLUMN retry_at timestamptz;
