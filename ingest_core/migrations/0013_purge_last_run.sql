-- What the last purge run removed (ingest_core/lifecycle.py purge), one row,
-- for /metrics (ingest_purge_last_run_removed), which reads it at scrape time:
-- the worker that runs the purge is not the process that serves /metrics.
CREATE TABLE purge_last_run (
    id           boolean     PRIMARY KEY DEFAULT true CONSTRAINT purge_last_run_one_row CHECK (id),
    finished_at  timestamptz NOT NULL DEFAULT now(),
    messages     bigint      NOT NULL CHECK (messages >= 0),
    objects      bigint      NOT NULL CHECK (objects >= 0),
    bytes        bigint      NOT NULL CHECK (bytes >= 0)
);
