"""The dispatcher: a loop in ``ingest worker`` beside the extraction threads.

Each round claims due deliveries (a lease, committed), sends them without any
transaction open, and records every attempt. A worker killed mid-send leaves a
lease that expires, and the delivery is sent again with the same
``webhook-id``: delivery is at least once.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.audit import AuditEvent
from ingest_core.errors import IngestError, StoreUnavailable
from ingest_core.webhooks import addresses, schedule, sender, signing

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from ingest_core.audit import AuditLog
    from ingest_core.webhooks.model import AttemptResult, DueDelivery, WebhookStore
    from ingest_core.webhooks.secrets_box import SecretBox

log = logging.getLogger("ingest.webhooks")

STALE_ENDPOINT_S = 5 * 24 * 3600.0  # no success this long while deliveries were due: disabled


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    allow_private: bool = False
    require_https: bool = False
    timeout_s: float = 15.0
    lease_s: float = 60.0  # longer than an attempt can take
    batch: int = 8  # deliveries claimed, and sent in parallel, per round
    idle_s: float = 0.5  # wait between rounds that found nothing due
    error_wait_s: float = 5.0  # wait after a round that failed
    stale_s: float = STALE_ENDPOINT_S


class Dispatcher:
    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        config: DispatchConfig,
        *,
        lookup: Callable[[str], list[str]],
        audit: AuditLog | None = None,
        post: Callable[..., sender.Response] = sender.post,
    ) -> None:
        self._store = store
        self._box = box
        self._config = config
        self._lookup = lookup
        self._audit = audit
        self._post = post
        self._pool = ThreadPoolExecutor(config.batch, thread_name_prefix="webhook")

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set; a database that fails is waited out."""
        log.info("webhook dispatcher started")
        while not stop.is_set():
            try:
                sent = self.run_once()
            except StoreUnavailable as exc:
                log.warning("webhook dispatcher: %s", exc)
                stop.wait(self._config.error_wait_s)
                continue
            except Exception:  # a bug must not end deliveries for the worker's lifetime
                log.exception("webhook dispatcher round failed; its leases expire and retry")
                stop.wait(self._config.error_wait_s)
                continue
            if not sent:
                stop.wait(self._config.idle_s)
        self._pool.shutdown(wait=True)

    def run_once(self) -> int:
        """One round: claim, send in parallel, record. Returns how many were tried."""
        due = self._store.claim_due(self._config.batch, self._config.lease_s)
        for delivery, result in zip(due, self._pool.map(self._attempt, due), strict=True):
            self._record(delivery, result)
        return len(due)

    def _attempt(self, delivery: DueDelivery) -> AttemptResult:
        from ingest_core.webhooks.model import AttemptResult

        started = time.monotonic()
        try:
            target = addresses.resolve(
                delivery.url,
                lookup=self._lookup,
                allow_private=self._config.allow_private,
                require_https=self._config.require_https,
            )
            secrets = [self._box.open(stored) for stored in delivery.secrets]
        except (addresses.UnsafeEndpoint, IngestError) as exc:
            return self._failed(delivery, None, time.monotonic() - started, str(exc))
        timestamp = int(time.time())
        headers = signing.headers(secrets, delivery.event_id, timestamp, delivery.body)
        answer = self._post(target, headers, delivery.body, timeout_s=self._config.timeout_s)
        status = answer.status
        if status is not None and 200 <= status < 300:
            return AttemptResult(status, answer.duration_s, None, delivered=True, next_in_s=None)
        if status == 410:
            return AttemptResult(
                status, answer.duration_s, "410 Gone", delivered=False, next_in_s=None,
                disable="the receiver answered 410 Gone",
            )  # fmt: skip
        if status is not None and 300 <= status < 400:
            error = f"redirect {status} not followed"
        elif status is not None:
            error = f"HTTP {status}"
        else:
            error = answer.error or "no answer"
        retry_after = None
        if status in schedule.RETRY_AFTER_STATUSES:
            retry_after = schedule.parse_retry_after(answer.retry_after)
        return self._failed(delivery, status, answer.duration_s, error, retry_after)

    @staticmethod
    def _failed(
        delivery: DueDelivery,
        status: int | None,
        duration_s: float,
        error: str,
        retry_after_s: float | None = None,
    ) -> AttemptResult:
        from ingest_core.webhooks.model import AttemptResult

        delay = schedule.next_delay(delivery.attempts, retry_after_s)
        return AttemptResult(status, duration_s, error, delivered=False, next_in_s=delay)

    def _record(self, delivery: DueDelivery, result: AttemptResult) -> None:
        disabled = self._store.record_attempt(delivery, result, self._config.stale_s)
        extra = {
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "endpoint_id": delivery.endpoint_id,
            "tenant": delivery.org_slug,
            "attempt": delivery.attempts,
            "status_code": result.status_code,
        }
        if result.delivered:
            log.info("webhook delivered", extra=extra)
        elif result.next_in_s is None:
            log.warning("webhook delivery failed for good: %s", result.error, extra=extra)
        else:
            log.info("webhook attempt failed, retry in %.0f s: %s", result.next_in_s,
                     result.error, extra=extra)  # fmt: skip
        if disabled is not None:
            log.warning("webhook endpoint disabled: %s", disabled, extra=extra)
            if self._audit is not None:
                try:
                    self._audit.record(
                        AuditEvent(
                            actor="dispatcher",
                            action="endpoint.disable",
                            org_slug=delivery.org_slug,
                            scope={"endpoint_id": delivery.endpoint_id, "reason": disabled},
                            count=1,
                        )
                    )
                except StoreUnavailable as exc:
                    log.warning("endpoint disabled, but not recorded in the audit log: %s", exc)
