"""Builds the adapters from Settings. The only module that wires."""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest_core import lifecycle, operations
from ingest_core.adapters.objects import LocalObjectStore, object_store_from_url
from ingest_core.adapters.postgres import PostgresMessageRepository
from ingest_core.adapters.postgres import health as pg_health
from ingest_core.adapters.postgres.api_reads import PostgresTenantReads
from ingest_core.adapters.postgres.audit import PostgresAuditLog
from ingest_core.adapters.postgres.automated import AutomatedAdmin, PostgresAutomatedPolicies
from ingest_core.adapters.postgres.common import Pool, open_pool
from ingest_core.adapters.postgres.embedded import database_url_for, ensure_folder
from ingest_core.adapters.postgres.lifecycle import PostgresLifecycle
from ingest_core.adapters.postgres.migrate import (
    applied_migrations,
    available_migrations,
    migrate,
)
from ingest_core.adapters.postgres.operator import OperatorQueries
from ingest_core.adapters.postgres.senders import PostgresSenderRules, SenderAdmin
from ingest_core.adapters.postgres.tenants import PostgresTenantDirectory, TenantAdmin
from ingest_core.adapters.postgres.tokens import PostgresTokens
from ingest_core.adapters.postgres.webhooks import PostgresWebhooks
from ingest_core.adapters.queue import HueyJobQueue, huey_from_url, pending_jobs
from ingest_core.adapters.sqlite_export import ExportSummary, export_tenant
from ingest_core.api.tokens import Tokens
from ingest_core.audit import AuditEvent
from ingest_core.breaker import Breaker
from ingest_core.errors import ConfigError, IngestError, Unavailable
from ingest_core.extraction import ExtractionConfig
from ingest_core.guarded import GuardedBlobStore
from ingest_core.lifecycle import PurgeConfig, PurgeReport
from ingest_core.mime import MimeLimits
from ingest_core.service import AcceptConfig, InboundService
from ingest_core.webhooks import DispatchConfig, Dispatcher, Endpoints, SecretBox
from ingest_core.worker.tasks import Tasks, register

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Iterator
    from datetime import datetime
    from pathlib import Path

    from ingest_core.audit import AuditLog
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


def extraction_config(settings: Settings) -> ExtractionConfig:
    """The extraction use case's part of the settings."""
    return ExtractionConfig(
        limits=MimeLimits(
            max_parts=settings.extract_max_parts,
            max_depth=settings.extract_max_depth,
            max_decoded_bytes=settings.extract_max_decoded_bytes,
            max_lines=settings.extract_max_lines,
        ),
        retries=settings.extract_retries,
        claim_lease_s=settings.claim_lease_s,
        spool_dir=settings.spool_dir,
    )


def api_base_url(settings: Settings) -> str:
    """The base of the tenant API's absolute URLs (payloads of events, the API's own)."""
    return (settings.api_public_url or f"http://{settings.api_listen}").rstrip("/")


def purge_config(settings: Settings) -> PurgeConfig:
    """The retention run's part of the settings."""
    return PurgeConfig(
        default_days=settings.retention_days,
        batch=settings.purge_batch,
        refuse_s=settings.purge_grace_s,
    )


def dispatch_config(settings: Settings) -> DispatchConfig:
    """The webhook dispatcher's part of the settings: private addresses only when
    allowed, and https in production unless private addresses are allowed."""
    return DispatchConfig(
        allow_private=settings.webhook_allow_private,
        require_https=settings.production and not settings.webhook_allow_private,
    )


def sweep_config(settings: Settings) -> operations.SweepConfig:
    """The sweep's part of the settings."""
    return operations.SweepConfig(
        received_age_s=settings.sweep_age_s, claim_lease_s=settings.claim_lease_s
    )


def _breaker(name: str, settings: Settings) -> Breaker:
    """One per dependency and process, shared by every caller (LMTP, the milter's
    recipient checks, readiness): docs/throughput.md, "Outages"."""
    return Breaker(name, failures=settings.breaker_failures, reset_s=settings.breaker_reset_s)


@contextlib.contextmanager
def open_app(
    settings: Settings,
    *,
    huey: Any = None,
    tasks: Tasks | None = None,
    tenants: TenantDirectory | None = None,
    store: BlobStore | None = None,
    repository: MessageRepository | None = None,
    queue: JobQueue | None = None,
    sender_rules: SenderRulesSource | None = None,
    verifier: SenderVerifier | None = None,
    automated_policies: AutomatedPolicySource | None = None,
    audit: AuditLog | None = None,
    create_database: bool = True,
) -> Iterator[App]:
    """All adapters for ``settings``; the pool is closed on exit.

    ``create_database``: whether an embedded database that does not exist yet
    is created (``db upgrade`` and ``serve``); otherwise that is a ConfigError
    naming the folder looked in. A data folder the defaults need but that cannot
    be created is a ConfigError too.

    Each keyword replaces the adapter bootstrap would build (tests pass fakes
    here). ``huey``: the instance the extraction tasks are registered on (built
    from ``settings.queue_url`` when None); ``tasks``: tasks already registered on
    it (the consumer's, see :func:`open_worker`), else they are registered here
    with this app as their adapters."""
    if uses_data_dir(settings):
        ensure_folder(settings.data_dir)
    database_url = database_url_for(settings, create=create_database)
    pool = open_pool(
        database_url,
        timeout_s=settings.store_timeout_s,
        acquire_timeout_s=min(settings.connect_timeout_s, settings.store_timeout_s),
        breaker=_breaker("postgres", settings),
        max_size=20,
    )
    try:
        if store is None:
            store = GuardedBlobStore(
                object_store_from_url(
                    settings.object_store_url,
                    settings.objects_dir,
                    timeout_s=settings.store_timeout_s,
                    connect_timeout_s=settings.connect_timeout_s,
                ),
                _breaker("object store", settings),
            )
        if repository is None:
            repository = PostgresMessageRepository(pool, api_url=api_base_url(settings))
        if tenants is None:
            tenants = PostgresTenantDirectory(pool)
            if settings.tenant_cache_s > 0:
                tenants = CachingTenantDirectory(tenants, ttl_s=settings.tenant_cache_s)
        if huey is None:
            huey = huey_from_url(
                settings.queue_url, settings.queue_path, timeout_s=settings.store_timeout_s
            )
        huey_queue: HueyJobQueue | None = None
        if queue is None:
            queue = huey_queue = HueyJobQueue(huey)
        service = InboundService(
            config=AcceptConfig(domains=settings.domains, mailbox=settings.mailbox),
            tenants=tenants,
            store=store,
            repository=repository,
            queue=queue,
        )
        app = App(
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
            sender_rules=sender_rules or PostgresSenderRules(pool),
            automated=AutomatedAdmin(pool),
            automated_policies=automated_policies or PostgresAutomatedPolicies(pool),
            tokens=Tokens(PostgresTokens(pool)),
            reads=PostgresTenantReads(pool),
            audit=audit or PostgresAuditLog(pool),
        )
        if verifier is not None:
            app.extras["verifier"] = verifier
        if tasks is None:
            tasks = register(huey, app)
        if huey_queue is not None:
            huey_queue.use_task(tasks.extract)
        yield app
    finally:
        pool.close()


def check_dependencies(settings: Settings) -> dict[str, str | None]:
    """Postgres (reached, schema up to date), the object store and the queue,
    each asked once: None when it answered, else what failed, with the
    dependency's own error. Creates no embedded database and no queue file."""
    timeout_s = min(PROBE_TIMEOUT_S, settings.store_timeout_s)

    def postgres() -> None:
        url = database_url_for(settings, create=False)
        applied = set(applied_migrations(url, timeout_s=timeout_s))
        missing = [version for version, _ in available_migrations() if version not in applied]
        if missing:
            raise IngestError(
                f"reached, but {len(missing)} migration(s) not applied ({missing[0]}…)"
                " — run `ingest db upgrade`"
            )

    def object_store() -> None:
        object_store_from_url(
            settings.object_store_url,
            settings.objects_dir,
            timeout_s=timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ).ping()

    def queue() -> None:
        if settings.queue_url is None and not settings.queue_path.exists():
            raise IngestError(
                f"no queue file at {settings.queue_path} yet — `ingest serve` creates it"
            )
        pending_jobs(huey_from_url(settings.queue_url, settings.queue_path, timeout_s=timeout_s))

    checks: dict[str, Callable[[], None]] = {
        "postgres": postgres,
        "object_store": object_store,
        "queue": queue,
    }
    return {name: _failure(check) for name, check in checks.items()}


def _failure(check: Callable[[], None]) -> str | None:
    try:
        check()
    except Unavailable as exc:
        return f"{exc} [{exc.cause}]{_root_cause(exc)}"
    except IngestError as exc:
        return str(exc)
    except Exception as exc:  # an adapter's own error: say what it was
        return f"{type(exc).__name__}: {exc}"
    return None


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost error behind ``exc``, as ``: …`` (the
    driver's own words, e.g. libpq's), or nothing."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    if inner is exc:
        return ""
    text = str(inner).strip().splitlines()
    return f": {text[0].strip()}" if text else ""


def migration_versions() -> list[str]:
    """Every migration this version of the code has, in order."""
    return [version for version, _ in available_migrations()]


def uses_data_dir(settings: Settings) -> bool:
    """Whether a default keeps data under ``INGEST_DATA_DIR`` (embedded database,
    object folder, SQLite queue)."""
    return None in (settings.database_url, settings.object_store_url, settings.queue_url)


class Worker:
    """The consumer process's huey, its tasks registered at once, and the adapters
    they use opened on first use (not at import: huey's consumer imports the
    module holding the instance)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.huey: Any = huey_from_url(
            settings.queue_url, settings.queue_path, timeout_s=settings.store_timeout_s
        )
        self._lock = threading.Lock()
        self._app: App | None = None
        self._stack = contextlib.ExitStack()
        self.tasks = register(self.huey, _LazyApp(self))

    def app(self) -> App:
        with self._lock:
            if self._app is None:
                self._app = self._stack.enter_context(
                    open_app(self.settings, huey=self.huey, tasks=self.tasks, create_database=False)
                )
                atexit.register(self._stack.close)
            return self._app

    def close(self) -> None:
        self._stack.close()


class _LazyApp:
    """``WorkerDeps`` that opens the worker's app when a task first needs it."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    @property
    def extraction(self) -> ExtractionConfig:
        return extraction_config(self._worker.settings)

    def sweep(self) -> list[uuid.UUID]:
        return self._worker.app().sweep()

    @property
    def repository(self) -> MessageRepository:
        return self._worker.app().repository

    @property
    def store(self) -> BlobStore:
        return self._worker.app().store

    @property
    def sender_rules(self) -> SenderRulesSource:
        return self._worker.app().sender_rules

    @property
    def automated_policies(self) -> AutomatedPolicySource:
        return self._worker.app().automated_policies

    def verifier(self) -> SenderVerifier:
        return self._worker.app().verifier()

    def remove_stale_temp_files(self) -> int:
        return self._worker.app().remove_stale_temp_files()

    def run_retention(self) -> int:
        return self._worker.app().run_retention()


def open_worker(settings: Settings) -> Worker:
    """The huey consumer's side of the wiring (``ingest_core.worker.consumer``)."""
    return Worker(settings)
