"""The App: every adapter for one set of Settings, and what the CLI, the servers
and the worker ask of them. Built by :func:`ingest_core.bootstrap.open_app`."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest_core import lifecycle, operations
from ingest_core.adapters.objects import LocalObjectStore
from ingest_core.adapters.postgres import health as pg_health
from ingest_core.adapters.postgres.console import PostgresConsoleReads
from ingest_core.adapters.postgres.lifecycle import PostgresLifecycle
from ingest_core.adapters.postgres.migrate import applied_migrations, migrate
from ingest_core.adapters.postgres.operators import PostgresOperators
from ingest_core.adapters.postgres.webhooks import PostgresWebhooks
from ingest_core.adapters.queue import pending_jobs
from ingest_core.adapters.sqlite_export import ExportSummary, export_tenant
from ingest_core.audit import AuditEvent
from ingest_core.bootstrap.checks import migration_versions
from ingest_core.bootstrap.configs import (
    PROBE_TIMEOUT_S,
    dispatch_config,
    extraction_config,
    purge_config,
    sweep_config,
)
from ingest_core.console.operators import Operators
from ingest_core.console.secret import console_secret
from ingest_core.console.service import Console
from ingest_core.errors import ConfigError, IngestError
from ingest_core.guarded import GuardedBlobStore
from ingest_core.webhooks import Dispatcher, Endpoints, SecretBox

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from ingest_core.adapters.postgres.automated import AutomatedAdmin
    from ingest_core.adapters.postgres.common import Pool
    from ingest_core.adapters.postgres.operator import OperatorQueries
    from ingest_core.adapters.postgres.senders import SenderAdmin
    from ingest_core.adapters.postgres.tenants import TenantAdmin
    from ingest_core.api.tokens import Tokens
    from ingest_core.audit import AuditLog
    from ingest_core.extraction import ExtractionConfig
    from ingest_core.lifecycle import PurgeReport
    from ingest_core.ports import (
        AutomatedPolicySource,
        BlobStore,
        JobQueue,
        MessageRepository,
        SenderRulesSource,
        SenderVerifier,
        TenantDirectory,
        TenantReads,
    )
    from ingest_core.service import InboundService
    from ingest_core.settings import Settings

log = logging.getLogger("ingest.bootstrap")


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
    automated: AutomatedAdmin
    automated_policies: AutomatedPolicySource
    tokens: Tokens
    reads: TenantReads
    audit: AuditLog
    extras: dict[str, Any] = field(default_factory=dict)

    def verifier(self) -> SenderVerifier:
        """The sender-authentication verifier (DNS), built on first use."""
        if "verifier" not in self.extras:
            from ingest_core.sender import build_verifier

            built: SenderVerifier = build_verifier(self.settings)  # checked against the port
            self.extras["verifier"] = built
        verifier: SenderVerifier = self.extras["verifier"]
        return verifier

    def endpoints(self) -> Endpoints:
        """Webhook endpoint administration (``ingest endpoints``, ``deliveries``, ``events``)."""
        return Endpoints(
            PostgresWebhooks(self.pool),
            SecretBox(self.settings.secret_key),
            dispatch_config(self.settings),
            self._address_lookup,
            production=self.settings.production,
        )

    def dispatcher(self) -> Dispatcher:
        """The webhook dispatcher loop's worker (run by ``ingest worker``)."""
        box = SecretBox(self.settings.secret_key)
        if self.settings.production and not box.encrypts:
            raise ConfigError(
                "INGEST_SECRET_KEY: unset, and INGEST_ENV=production keeps endpoint secrets"
                " only encrypted — set it"
            )
        return Dispatcher(
            PostgresWebhooks(self.pool),
            box,
            dispatch_config(self.settings),
            lookup=self._address_lookup,
            audit=self.audit,
        )

    def _address_lookup(self, host: str) -> list[str]:
        """A name's A and AAAA records through our resolver (INGEST_DNS_SERVERS)."""
        if "resolver" not in self.extras:
            from ingest_core.sender import DnsResolver

            self.extras["resolver"] = DnsResolver(
                self.settings.dns_servers, timeout_s=self.settings.dns_timeout_s
            )
        resolver = self.extras["resolver"]
        found: list[str] = []
        for query in (resolver.a, resolver.aaaa):
            with contextlib.suppress(IngestError):
                found.extend(query(host))
        return found

    @property
    def operators(self) -> Operators:
        """Console operators (``ingest operators``)."""
        if "operators" not in self.extras:
            self.extras["operators"] = Operators(PostgresOperators(self.pool))
        operators: Operators = self.extras["operators"]
        return operators

    @property
    def console(self) -> Console:
        """What the web console reads and does. Raises ConfigError in production
        without INGEST_CONSOLE_SECRET."""
        if "console" not in self.extras:
            self.extras["console"] = Console(
                operators=self.operators,
                reads=PostgresConsoleReads(self.pool),
                tokens=self.tokens,
                store=self.store,
                repository=self.repository,
                queue=self.queue,
                audit=self.audit,
                secret=console_secret(self.settings),
                secure_cookies=self.settings.production,
                limits=self.extraction.limits,
            )
        console: Console = self.extras["console"]
        return console

    def migrate(self) -> list[str]:
        return migrate(self.database_url, timeout_s=self.settings.store_timeout_s)

    def pending_migrations(self) -> list[str]:
        """Migrations the database lacks (all of them for an empty database)."""
        applied = set(applied_migrations(self.database_url, timeout_s=self._probe_timeout_s))
        return [version for version in migration_versions() if version not in applied]

    @property
    def extraction(self) -> ExtractionConfig:
        return extraction_config(self.settings)

    @property
    def lifecycle(self) -> PostgresLifecycle:
        """Retention, legal holds and erasure (``ingest purge``, ``erase``, ``holds``)."""
        if "lifecycle" not in self.extras:
            self.extras["lifecycle"] = PostgresLifecycle(self.pool)
        store: PostgresLifecycle = self.extras["lifecycle"]
        return store

    def purge(self, actor: str = "retention") -> PurgeReport:
        """Remove what is past retention (``ingest purge``, the worker's
        ``ingest.purge``); one audit event per tenant that lost messages."""
        report = lifecycle.purge(self.lifecycle, self.store, purge_config(self.settings))
        for slug, (count, size) in sorted(report.by_tenant.items()):
            self.audit.record(
                AuditEvent(
                    actor=actor,
                    action="retention.purge",
                    org_slug=slug,
                    scope={"messages": count, "bytes": size},
                    count=count,
                )
            )
        return report

    def run_retention(self) -> int:
        """The worker's ``ingest.purge``: messages removed."""
        return self.purge().messages

    def sweep(self) -> list[uuid.UUID]:
        """Re-enqueue the rows whose extraction job was lost (``ingest sweep``)."""
        return operations.sweep(self.repository, self.queue, sweep_config(self.settings))

    def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Temp files of object writes that died mid-write (local folder store only)."""
        store = self.store.inner if isinstance(self.store, GuardedBlobStore) else self.store
        if isinstance(store, LocalObjectStore):
            removed = store.remove_stale_temp_files(older_than_s)
            if removed:
                log.info("removed stale temp files", extra={"removed": removed})
            return removed
        return 0

    def replay(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Back to RECEIVED and enqueued; returns the ids that exist."""
        return operations.replay(self.repository, self.queue, ids)

    def release(self, message_id: uuid.UUID) -> bool:
        """A QUARANTINED message goes on to extraction; False if it is not quarantined."""
        return operations.release(self.repository, self.queue, message_id)

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        """One cheap blocking call per dependency that raises (StoreUnavailable)
        unless the dependency is reachable: Postgres ``SELECT 1`` through the pool,
        the object store's probe, the queue's pending count."""
        checks: dict[str, Callable[[], object]] = {
            "postgres": functools.partial(pg_health.ping, self.pool, self._probe_timeout_s)
        }
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

    def automated_counts(self) -> dict[tuple[str, str], int]:
        """Automated messages by (tenant slug, kind). Raises StoreUnavailable."""
        return pg_health.automated_counts(self.pool, self._probe_timeout_s)

    def webhook_attempts(self) -> dict[tuple[str, str], int]:
        """Webhook delivery attempts by (tenant slug, outcome). Raises StoreUnavailable."""
        return pg_health.webhook_attempts(self.pool, self._probe_timeout_s)

    def webhook_oldest_pending(self) -> dict[str, float]:
        """Age (s) of each tenant's oldest undelivered delivery. Raises StoreUnavailable."""
        return pg_health.webhook_oldest_pending(self.pool, self._probe_timeout_s)

    def webhook_attempt_latency(self) -> tuple[list[tuple[float, int]], float]:
        """Attempt durations: cumulative buckets and their sum (s). Raises StoreUnavailable."""
        return pg_health.webhook_attempt_latency(self.pool, self._probe_timeout_s)

    def last_purge(self) -> dict[str, int]:
        """What the last purge run removed: messages, objects, bytes (empty before
        the first). Raises StoreUnavailable."""
        return pg_health.last_purge(self.pool, self._probe_timeout_s)

    def stored_bytes(self) -> dict[str, int]:
        """Bytes stored per tenant slug (raw messages and attachments, as the rows
        count them). Raises StoreUnavailable."""
        return pg_health.stored_bytes(self.pool, self._probe_timeout_s)

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
