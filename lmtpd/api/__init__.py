"""The tenant API: :func:`build_api` (the FastAPI app) and :func:`serve_api`
(it on ``INGEST_API_LISTEN`` through hypercorn's trio worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

from lmtpd.api.admin import AdminSources, TenantProvisioning
from lmtpd.api.app import ApiConfig, build_api
from lmtpd.asgi import ServeOptions, serve_asgi

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ingest_core.api.tokens import Tokens
    from ingest_core.audit import AuditLog
    from ingest_core.ports import BlobStore, TenantReads
    from ingest_core.settings import Settings

__all__ = ["AdminSources", "ApiConfig", "ApiSources", "build_api", "serve_api"]


class ApiSources(Protocol):
    """What the API reads (``ingest_core.bootstrap.App``)."""

    tokens: Tokens
    reads: TenantReads
    store: BlobStore
    audit: AuditLog

    @property
    def admin(self) -> TenantProvisioning: ...


def api_config(settings: Settings) -> ApiConfig:
    scheme = "https" if settings.api_tls_cert else "http"
    public = settings.api_public_url or f"{scheme}://{settings.api_listen}"
    return ApiConfig(public_url=public, trusted_proxies=settings.api_trusted_proxies)


async def serve_api(
    sources: ApiSources,
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Raises :class:`OSError` when ``INGEST_API_LISTEN`` cannot be bound."""
    admin = AdminSources(sources.admin, sources.tokens, sources.audit)
    app = build_api(
        sources.tokens, sources.reads, sources.store, api_config(settings), registry, admin
    )
    cert, key = settings.api_tls_cert, settings.api_tls_key
    options = ServeOptions(
        tls_cert=str(cert) if cert else None,
        tls_key=str(key) if key else None,
        log_name="ingest.api",
    )
    await serve_asgi(app, settings.api_listen, options, task_status=task_status)
