"""Postgres reads for the serve process's readiness and metrics endpoints.

Both run in worker threads of the HTTP endpoint and must stay cheap and short:
each waits for a pooled connection at most ``timeout_s`` and sets a statement
timeout of its own for its one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.model import AutomatedKind, MessageStatus

if TYPE_CHECKING:
    import psycopg

# Aggregate first, then give every tenant a row per status (0 included), so a
# series drops to 0 instead of vanishing.
_MESSAGE_COUNTS = """
SELECT o.slug, s.status, coalesce(c.n, 0)
FROM organization o
CROSS JOIN unnest(%s::text[]) AS s (status)
LEFT JOIN (
    SELECT org_id, status, count(*) AS n FROM inbound_message GROUP BY org_id, status
) c ON c.org_id = o.id AND c.status = s.status
"""

# Every tenant gets a row per kind (0 included), like the message counts.
_AUTOMATED_COUNTS = """
SELECT o.slug, k.kind, coalesce(c.n, 0)
FROM organization o
CROSS JOIN unnest(%s::text[]) AS k (kind)
LEFT JOIN (
    SELECT org_id, automated_kind, count(*) AS n FROM inbound_message
    WHERE automated_kind IS NOT NULL GROUP BY org_id, automated_kind
) c ON c.org_id = o.id AND c.automated_kind = k.kind
"""

_STORED_BYTES = """
SELECT o.slug, coalesce(m.total, 0) + coalesce(a.total, 0)
FROM organization o
LEFT JOIN (SELECT org_id, sum(size_bytes) AS total FROM inbound_message GROUP BY org_id) m
    ON m.org_id = o.id
LEFT JOIN (SELECT org_id, sum(size_bytes) AS total FROM inbound_attachment GROUP BY org_id) a
    ON a.org_id = o.id
"""

# Only what the worker has checked (auth_* set); the per-tenant results of the two
# checks that decide most policies.
_VERDICT_COUNTS = """
SELECT o.slug, v.check_name, v.result, count(*)
FROM inbound_message m
JOIN organization o ON o.id = m.org_id
CROSS JOIN LATERAL (VALUES ('spf', m.auth_spf), ('dmarc', m.auth_dmarc)) AS v (check_name, result)
WHERE m.auth_checked_at IS NOT NULL AND v.result IS NOT NULL
GROUP BY o.slug, v.check_name, v.result
"""


def ping(pool: Pool, timeout_s: float) -> None:
    """``SELECT 1`` through the pool within ``timeout_s``; raises StoreUnavailable."""
    with database_errors("ping"), pool.connection(timeout=timeout_s, deadline=True) as conn:
        _limit_statement(conn, timeout_s)
        conn.execute("SELECT 1").fetchone()


def message_counts(pool: Pool, timeout_s: float) -> dict[tuple[str, str], int]:
    """Messages by (tenant slug, status), every status of every tenant included.
    Raises StoreUnavailable."""
    statuses = [status.value for status in MessageStatus]
    with database_errors("count messages"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_MESSAGE_COUNTS, (statuses,)).fetchall()
    return {(slug, status): int(count) for slug, status, count in rows}


def verdict_counts(pool: Pool, timeout_s: float) -> dict[tuple[str, str, str], int]:
    """Checked messages by (tenant slug, check, result). Raises StoreUnavailable."""
    with database_errors("count sender verdicts"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_VERDICT_COUNTS).fetchall()
    return {(slug, check, result): int(count) for slug, check, result, count in rows}


def automated_counts(pool: Pool, timeout_s: float) -> dict[tuple[str, str], int]:
    """Classified automated messages by (tenant slug, kind). Raises StoreUnavailable."""
    with database_errors("count automated messages"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_AUTOMATED_COUNTS, ([kind.value for kind in AutomatedKind],)).fetchall()
    return {(slug, kind): int(count) for slug, kind, count in rows}


def last_purge(pool: Pool, timeout_s: float) -> dict[str, int]:
    """What the last purge run removed: messages, objects, bytes (empty before
    the first run). Raises StoreUnavailable."""
    with database_errors("read last purge run"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        row = conn.execute("SELECT messages, objects, bytes FROM purge_last_run").fetchone()
    if row is None:
        return {}
    return {"messages": int(row[0]), "objects": int(row[1]), "bytes": int(row[2])}


def stored_bytes(pool: Pool, timeout_s: float) -> dict[str, int]:
    """Bytes per tenant slug: its raw messages and attachments as the rows count
    them (an object two messages share counts twice). Raises StoreUnavailable."""
    with database_errors("count stored bytes"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_STORED_BYTES).fetchall()
    return {slug: int(size) for slug, size in rows}


_WEBHOOK_ATTEMPTS = """
SELECT o.slug,
       CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'delivered'
            WHEN a.status_code IS NULL THEN 'no_answer' ELSE 'http_error' END,
       count(*)
FROM webhook_attempt a
JOIN webhook_delivery d ON d.id = a.delivery_id
JOIN webhook_endpoint w ON w.id = d.endpoint_id
JOIN organization o ON o.id = w.org_id
GROUP BY 1, 2
"""

_WEBHOOK_OLDEST_PENDING = """
SELECT o.slug, extract(epoch FROM now() - min(d.created_at))
FROM webhook_delivery d
JOIN webhook_endpoint w ON w.id = d.endpoint_id
JOIN organization o ON o.id = w.org_id
WHERE d.status = 'PENDING'
GROUP BY 1
"""


def webhook_attempts(pool: Pool, timeout_s: float) -> dict[tuple[str, str], int]:
    """Delivery attempts by (tenant slug, outcome: delivered, http_error,
    no_answer). Raises StoreUnavailable."""
    with database_errors("count webhook attempts"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_WEBHOOK_ATTEMPTS).fetchall()
    return {(slug, outcome): int(count) for slug, outcome, count in rows}


# Upper bounds (s) of the attempt-latency buckets; the last attempt timeout is 15 s.
WEBHOOK_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)


def webhook_attempt_latency(pool: Pool, timeout_s: float) -> tuple[list[tuple[float, int]], float]:
    """Attempts as a cumulative histogram, ``[(upper bound s, count), …,
    (inf, all)]``, and the sum of their durations in seconds. Raises StoreUnavailable."""
    counts = ", ".join(
        f"count(*) FILTER (WHERE duration_ms <= {int(b * 1000)})" for b in WEBHOOK_LATENCY_BUCKETS_S
    )
    with database_errors("webhook attempt latency"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        row = conn.execute(
            f"SELECT {counts}, count(*), coalesce(sum(duration_ms), 0) FROM webhook_attempt"
        ).fetchone()
    assert row is not None
    bounds = [*WEBHOOK_LATENCY_BUCKETS_S, float("inf")]
    return list(zip(bounds, (int(n) for n in row[:-1]), strict=True)), float(row[-1]) / 1000


def webhook_oldest_pending(pool: Pool, timeout_s: float) -> dict[str, float]:
    """Per tenant slug, the age in seconds of its oldest undelivered delivery
    (tenants with none are absent). Raises StoreUnavailable."""
    with database_errors("age of pending webhooks"), pool.connection(timeout=timeout_s) as conn:
        _limit_statement(conn, timeout_s)
        rows = conn.execute(_WEBHOOK_OLDEST_PENDING).fetchall()
    return {slug: float(age) for slug, age in rows}


def _limit_statement(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    """A statement timeout for the rest of this transaction only."""
    milliseconds = str(max(1, int(timeout_s * 1000)))
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (milliseconds,))
