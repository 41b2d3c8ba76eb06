"""open_app and open_worker: the adapters built from Settings (or the overrides
tests pass) and put together as an :class:`~ingest_core.bootstrap.app.App`."""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from ingest_core.adapters.objects import object_store_from_url
from ingest_core.adapters.postgres import PostgresMessageRepository
from ingest_core.adapters.postgres.api_reads import PostgresTenantReads
from ingest_core.adapters.postgres.audit import PostgresAuditLog
from ingest_core.adapters.postgres.automated import AutomatedAdmin, PostgresAutomatedPolicies
from ingest_core.adapters.postgres.common import open_pool
from ingest_core.adapters.postgres.embedded import database_url_for, ensure_folder
from ingest_core.adapters.postgres.operator import OperatorQueries
from ingest_core.adapters.postgres.senders import PostgresSenderRules, SenderAdmin
from ingest_core.adapters.postgres.tenants import PostgresTenantDirectory, TenantAdmin
from ingest_core.adapters.postgres.tokens import PostgresTokens
from ingest_core.adapters.queue import HueyJobQueue, huey_from_url
from ingest_core.api.tokens import Tokens
from ingest_core.bootstrap.app import App
from ingest_core.bootstrap.configs import (
    api_base_url,
    breaker,
    extraction_config,
    uses_data_dir,
)
from ingest_core.guarded import GuardedBlobStore
from ingest_core.service import AcceptConfig, InboundService
from ingest_core.tenant_cache import CachingTenantDirectory
from ingest_core.worker.tasks import Tasks, register

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator

    from ingest_core.audit import AuditLog
    from ingest_core.extraction import ExtractionConfig
    from ingest_core.ports import (
        AutomatedPolicySource,
        BlobStore,
        JobQueue,
        MessageRepository,
        SenderRulesSource,
        SenderVerifier,
        TenantDirectory,
    )
    from ingest_core.settings import Settings


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
        breaker=breaker("postgres", settings),
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
                breaker("object store", settings),
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
