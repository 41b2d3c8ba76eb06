"""Builds the adapters from Settings. The only module that wires."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore, object_store_from_url
from ingest_core.adapters.postgres import PostgresMessageRepository
from ingest_core.adapters.postgres import health as pg_health
from ingest_core.adapters.postgres.common import Pool, open_pool
from ingest_core.adapters.postgres.embedded import database_url_for
from ingest_core.adapters.postgres.migrate import migrate
from ingest_core.adapters.postgres.operator import OperatorQueries
from ingest_core.adapters.postgres.senders import PostgresSenderRules, SenderAdmin
from ingest_core.adapters.postgres.tenants import PostgresTenantDirectory, TenantAdmin
from ingest_core.adapters.queue import HueyJobQueue, huey_from_url, pending_jobs
from ingest_core.adapters.sqlite_export import ExportSummary, export_tenant
from ingest_core.errors import QueueUnavailable
from ingest_core.extraction import sweep
from ingest_core.service import AcceptConfig, InboundService

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Iterator
    from datetime import datetime
    from pathlib import Path

    from ingest_core.ports import (
        BlobStore,
        JobQueue,
        MessageRepository,
        SenderRulesSource,
        SenderVerifier,
        TenantDirectory,
    )
    from ingest_core.settings import Settings
from ingest_core.tenant_cache import CachingTenantDirectory

log = logging.getLogger("ingest.bootstrap")

# Readiness and metrics reads wait at most this long for a pooled connection and
# their statement; the HTTP endpoint gives each its own, shorter, deadline too.
PROBE_TIMEOUT_S = 5.0


@dataclass
class App:
    settings: Settings
    database_url: str
    pool: Pool
    tenants: TenantDirectory
    admin: TenantAdmin
    repository: MessageRepository
    store: BlobStore
    queue: JobQueue
    operator: OperatorQueries
    service: InboundService
    huey: Any
    senders: SenderAdmin
    sender_rules: SenderRulesSource
    extras: dict[str, Any] = field(default_factory=dict)

    def verifier(self) -> SenderVerifier:
        """The sender-authentication verifier (DNS), built on first use."""
        if "verifier" not in self.extras:
            from ingest_core.sender.verifier import build_verifier

            built: SenderVerifier = build_verifier(self.settings)  # checked against the port
            self.extras["verifier"] = built
        verifier: SenderVerifier = self.extras["verifier"]
        return verifier

    def migrate(self) -> list[str]:
        return migrate(self.database_url, timeout_s=self.settings.store_timeout_s)

    def sweep(self) -> list[uuid.UUID]:
        return sweep(self.repository, self.queue, self.settings)

    def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Temp files of object writes that died mid-write (local folder store only)."""
        if isinstance(self.store, LocalObjectStore):
            removed = self.store.remove_stale_temp_files(older_than_s)
            if removed:
                log.info("removed stale temp files", extra={"removed": removed})
            return removed
        return 0

    def replay(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Back to RECEIVED and enqueued; returns the ids that exist."""
        done = []
        for message_id in ids:
            if self.repository.reset_for_replay(message_id):
                self._enqueue(message_id)
                done.append(message_id)
        return done

    def release(self, message_id: uuid.UUID) -> bool:
        """A QUARANTINED message goes on to extraction, exempt from the sender
        policy from now on. False if it is not quarantined."""
        if not self.repository.release(message_id):
            return False
        log.info("message released from quarantine", extra={"message_id": str(message_id)})
        self._enqueue(message_id)
        return True

    def _enqueue(self, message_id: uuid.UUID) -> None:
        try:
            self.queue.enqueue_extraction(message_id)
        except QueueUnavailable:
            log.warning(
                "queue unavailable; the sweeper will enqueue it",
                extra={"message_id": str(message_id)},
            )

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        """One cheap blocking call per dependency that raises (StoreUnavailable)
        unless the dependency is reachable: Postgres ``SELECT 1`` through the pool,
        the object store's probe, the queue's pending count."""
        checks: dict[str, Callable[[], object]] = {
            "postgres": functools.partial(pg_health.ping, self.pool, self._probe_timeout_s)
        }
        if isinstance(self.store, LocalObjectStore | S3ObjectStore):
            checks["object_store"] = self.store.ping
        checks["queue"] = self.queue_depth
        return checks

    @property
    def _probe_timeout_s(self) -> float:
        return min(PROBE_TIMEOUT_S, self.settings.store_timeout_s)

    def queue_depth(self) -> int:
        """Extraction jobs waiting. Raises QueueUnavailable."""
        return pending_jobs(self.huey)

    def message_counts(self) -> dict[tuple[str, str], int]:
        """Messages by (tenant slug, status). Raises StoreUnavailable."""
        return pg_health.message_counts(self.pool, self._probe_timeout_s)

    def verdict_counts(self) -> dict[tuple[str, str, str], int]:
        """Checked messages by (tenant slug, spf|dmarc, result). Raises StoreUnavailable."""
        return pg_health.verdict_counts(self.pool, self._probe_timeout_s)

    def export(
        self,
        *,
        org_slug: str,
        since: datetime | None,
        out: Path,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportSummary:
        """One tenant's messages and manifests as a SQLite file (``ingest export``).
        Raises UnknownTenant, StoreUnavailable or ExportError."""
        return export_tenant(
            self.pool,
            org_slug=org_slug,
            since=since,
            out=out,
            overwrite=overwrite,
            progress=progress,
        )

    def child_environment(self) -> dict[str, str]:
        """Environment for a worker child: the same database as this process."""
        return {"INGEST_DATABASE_URL": self.database_url}


@contextlib.contextmanager
def open_app(settings: Settings, *, huey: Any = None) -> Iterator[App]:
    """All adapters for ``settings``; the pool is closed on exit. ``huey`` lets a
    test or the worker pass the instance whose tasks are registered."""
    from ingest_core import jobs

    database_url = database_url_for(settings)
    pool = open_pool(database_url, timeout_s=settings.store_timeout_s, max_size=20)
    try:
        store = object_store_from_url(
            settings.object_store_url, settings.objects_dir, timeout_s=settings.store_timeout_s
        )
        repository = PostgresMessageRepository(pool)
        tenants: TenantDirectory = PostgresTenantDirectory(pool)
        if settings.tenant_cache_s > 0:
            tenants = CachingTenantDirectory(tenants, ttl_s=settings.tenant_cache_s)
        if huey is None:
            huey = huey_from_url(
                settings.queue_url, settings.queue_path, timeout_s=settings.store_timeout_s
            )
        handles = jobs.registered(huey)
        queue = HueyJobQueue(huey, handles.extract)
        service = InboundService(
            config=AcceptConfig(domains=settings.domains, mailbox=settings.mailbox),
            tenants=tenants,
            store=store,
            repository=repository,
            queue=queue,
        )
        yield App(
            settings=settings,
            database_url=database_url,
            pool=pool,
            tenants=tenants,
            admin=TenantAdmin(pool),
            repository=repository,
            store=store,
            queue=queue,
            operator=OperatorQueries(pool),
            service=service,
            huey=huey,
            senders=SenderAdmin(pool),
            sender_rules=PostgresSenderRules(pool),
        )
    finally:
        pool.close()
