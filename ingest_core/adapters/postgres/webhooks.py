"""``WebhookStore`` on Postgres: endpoints, the delivery log and the
dispatcher's claims (docs/events.md, docs/schema.md).

A claim is its own short transaction (``FOR UPDATE SKIP LOCKED``, then a lease
in ``locked_until``), committed before the request is sent; the attempt is
recorded in another. No transaction stays open during an HTTP call.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from ingest_core.adapters.postgres.common import Pool, clean_text, database_errors
from ingest_core.errors import UnknownTenant
from ingest_core.webhooks.model import DeliveryRow, DeliveryStatus, DueDelivery, Endpoint

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from ingest_core.webhooks.model import AttemptResult

_ENDPOINT_SELECT = """
SELECT w.id, o.slug, w.url, w.event_types, w.created_at, w.last_success_at, w.disabled_at,
       w.disabled_reason, CASE WHEN w.previous_until > now() THEN w.previous_until END
FROM webhook_endpoint w JOIN organization o ON o.id = w.org_id
"""

_CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_delivery d
    JOIN webhook_endpoint w ON w.id = d.endpoint_id AND w.disabled_at IS NULL
    WHERE d.status = 'PENDING' AND d.next_attempt_at <= now()
      AND (d.locked_until IS NULL OR d.locked_until < now())
    ORDER BY d.next_attempt_at
    LIMIT %s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_delivery d
SET locked_until = now() + make_interval(secs => %s), attempts = d.attempts + 1
FROM due, webhook_endpoint w, event e, organization o
WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id AND o.id = w.org_id
RETURNING d.id, d.event_id, d.endpoint_id, o.slug, w.url, w.secret,
          CASE WHEN w.previous_until > now() THEN w.previous_secret END,
          e.payload::text, d.attempts
"""

_RECORD_ATTEMPT = """
INSERT INTO webhook_attempt (delivery_id, status_code, duration_ms, error)
VALUES (%s, %s, %s, %s)
"""

_MOVE_ON = """
UPDATE webhook_delivery SET
    status = %(status)s, locked_until = NULL, last_status = %(code)s, last_error = %(error)s,
    next_attempt_at = CASE WHEN %(next_in)s::float8 IS NULL THEN next_attempt_at
                           ELSE now() + make_interval(secs => %(next_in)s::float8) END,
    delivered_at = CASE WHEN %(status)s = 'DELIVERED' THEN now() END
WHERE id = %(id)s
"""

_DISABLE_IF_STALE = """
UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = %s
WHERE id = %s AND disabled_at IS NULL
  AND COALESCE(last_success_at, created_at) < now() - make_interval(secs => %s)
"""

_DELIVERY_SELECT = """
SELECT d.id, d.event_id, e.type, d.endpoint_id, o.slug, d.status, d.attempts,
       CASE WHEN d.status = 'PENDING' THEN d.next_attempt_at END, d.last_status, d.last_error,
       d.created_at
FROM webhook_delivery d
JOIN event e ON e.id = d.event_id
JOIN organization o ON o.id = e.org_id
"""


class PostgresWebhooks:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def add_endpoint(
        self, org_slug: str, url: str, event_types: Sequence[str], secret: str
    ) -> Endpoint:
        endpoint_id = f"ep_{secrets.token_hex(8)}"
        with database_errors("add endpoint"), self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO webhook_endpoint (id, org_id, url, event_types, secret)"
                " SELECT %s, id, %s, %s, %s FROM organization WHERE slug = %s RETURNING id",
                (endpoint_id, clean_text(url), list(event_types), secret, org_slug),
            ).fetchone()
            if row is None:
                raise UnknownTenant(f"no tenant {org_slug!r} (ingest tenants list)")
            found = self._endpoint(conn, endpoint_id)
        assert found is not None
        return found

    def endpoints(self, org_slug: str | None) -> list[Endpoint]:
        with database_errors("list endpoints"), self._pool.connection() as conn:
            if org_slug is None:
                rows = conn.execute(_ENDPOINT_SELECT + " ORDER BY o.slug, w.created_at").fetchall()
            else:
                rows = conn.execute(
                    _ENDPOINT_SELECT + " WHERE o.slug = %s ORDER BY w.created_at", (org_slug,)
                ).fetchall()
        return [_endpoint(row) for row in rows]

    def set_disabled(self, endpoint_id: str, reason: str | None) -> Endpoint | None:
        with database_errors("change endpoint"), self._pool.connection() as conn:
            if reason is None:
                conn.execute(
                    "UPDATE webhook_endpoint SET disabled_at = NULL, disabled_reason = NULL,"
                    " last_success_at = now() WHERE id = %s AND disabled_at IS NOT NULL",
                    (endpoint_id,),
                )  # enabled again: the 5-day clock starts over
            else:
                conn.execute(
                    "UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = %s"
                    " WHERE id = %s AND disabled_at IS NULL",
                    (reason, endpoint_id),
                )
            return self._endpoint(conn, endpoint_id)

    def remove_endpoint(self, endpoint_id: str) -> Endpoint | None:
        with database_errors("remove endpoint"), self._pool.connection() as conn:
            found = self._endpoint(conn, endpoint_id)
            if found is not None:
                conn.execute("DELETE FROM webhook_endpoint WHERE id = %s", (endpoint_id,))
            return found

    def rotate_secret(self, endpoint_id: str, secret: str, overlap_s: float) -> Endpoint | None:
        with database_errors("rotate endpoint secret"), self._pool.connection() as conn:
            conn.execute(
                "UPDATE webhook_endpoint SET previous_secret = secret, secret = %s,"
                " previous_until = now() + make_interval(secs => %s) WHERE id = %s",
                (secret, float(overlap_s), endpoint_id),
            )
            return self._endpoint(conn, endpoint_id)

    def claim_due(self, limit: int, lease_s: float) -> list[DueDelivery]:
        with database_errors("claim deliveries"), self._pool.connection() as conn:
            rows = conn.execute(_CLAIM, (limit, float(lease_s))).fetchall()
        return [
            DueDelivery(
                id=row[0],
                event_id=row[1],
                endpoint_id=row[2],
                org_slug=row[3],
                url=row[4],
                secrets=tuple(s for s in (row[5], row[6]) if s),
                body=row[7].encode(),
                attempts=row[8],
            )
            for row in rows
        ]

    def record_attempt(
        self, delivery: DueDelivery, result: AttemptResult, stale_s: float
    ) -> str | None:
        if result.delivered:
            status = DeliveryStatus.DELIVERED
        elif result.next_in_s is None:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
        error = clean_text(result.error[:500]) if result.error else None
        with database_errors("record delivery attempt"), self._pool.connection() as conn:
            conn.execute(
                _RECORD_ATTEMPT,
                (delivery.id, result.status_code, int(result.duration_s * 1000), error),
            )
            conn.execute(
                _MOVE_ON,
                {
                    "status": status.value,
                    "code": result.status_code,
                    "error": error,
                    "next_in": result.next_in_s,
                    "id": delivery.id,
                },
            )
            if result.delivered:
                conn.execute(
                    "UPDATE webhook_endpoint SET last_success_at = now() WHERE id = %s",
                    (delivery.endpoint_id,),
                )
                return None
            if result.disable is not None:
                cursor = conn.execute(
                    "UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = %s"
                    " WHERE id = %s AND disabled_at IS NULL",
                    (result.disable, delivery.endpoint_id),
                )
                return result.disable if cursor.rowcount == 1 else None
            reason = "no successful delivery for 5 days"
            cursor = conn.execute(_DISABLE_IF_STALE, (reason, delivery.endpoint_id, stale_s))
            return reason if cursor.rowcount == 1 else None

    def deliveries(
        self,
        *,
        org_slug: str | None = None,
        status: DeliveryStatus | None = None,
        endpoint_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        where, params = [], []
        for clause, value in (
            ("o.slug = %s", org_slug),
            ("d.status = %s", status.value if status else None),
            ("d.endpoint_id = %s", endpoint_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = _DELIVERY_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY d.created_at DESC, d.id DESC LIMIT %s"
        with database_errors("list deliveries"), self._pool.connection() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [
            DeliveryRow(
                id=row[0],
                event_id=row[1],
                event_type=row[2],
                endpoint_id=row[3],
                org_slug=row[4],
                status=DeliveryStatus(row[5]),
                attempts=row[6],
                next_attempt_at=row[7],
                last_status=row[8],
                last_error=row[9],
                created_at=row[10],
            )
            for row in rows
        ]

    def retry(
        self,
        *,
        delivery_id: int | None = None,
        endpoint_id: str | None = None,
        since: datetime | None = None,
    ) -> int:
        value: object
        if delivery_id is not None:
            where, value = "id = %s", delivery_id
        elif endpoint_id is not None:
            where, value = "endpoint_id = %s", endpoint_id
        elif since is not None:
            where, value = "created_at >= %s", since
        else:
            return 0
        with database_errors("retry deliveries"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE webhook_delivery SET status = 'PENDING', next_attempt_at = now(),"
                f" locked_until = NULL WHERE {where} AND status <> 'DELIVERED'",
                (value,),
            )
            return cursor.rowcount

    def event(self, event_id: str) -> tuple[str, str, bytes] | None:
        with database_errors("read event"), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT e.type, o.slug, e.payload::text FROM event e"
                " JOIN organization o ON o.id = e.org_id WHERE e.id = %s",
                (event_id,),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2].encode())

    @staticmethod
    def _endpoint(conn: Any, endpoint_id: str) -> Endpoint | None:
        row = conn.execute(_ENDPOINT_SELECT + " WHERE w.id = %s", (endpoint_id,)).fetchone()
        return None if row is None else _endpoint(row)


def _endpoint(row: tuple[Any, ...]) -> Endpoint:
    return Endpoint(
        id=row[0],
        org_slug=row[1],
        url=row[2],
        event_types=tuple(row[3]),
        created_at=row[4],
        last_success_at=row[5],
        disabled_at=row[6],
        disabled_reason=row[7],
        previous_until=row[8],
    )
