"""The tenant API: :func:`build_api` (the FastAPI app) and :func:`serve_api`
(it on ``INGEST_API_LISTEN`` through hypercorn's trio worker)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import trio
from starlette.responses import RedirectResponse

from ingest_core.errors import ConfigError
from lmtpd.api.admin import AdminSources, TenantProvisioning
from lmtpd.api.app import ApiConfig, build_api
from lmtpd.api.console import build_console, console_off
from lmtpd.asgi import ServeOptions, serve_asgi

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry
    from starlette.requests import Request
    from starlette.responses import Response

    from ingest_core.api.tokens import Tokens
    from ingest_core.audit import AuditLog
    from ingest_core.console.service import Console
    from ingest_core.ports import BlobStore, TenantReads
    from ingest_core.settings import Settings

log = logging.getLogger("ingest.api")

__all__ = ["AdminSources", "ApiConfig", "ApiSources", "build_api", "serve_api"]


class ApiSources(Protocol):
    """What the API reads (``ingest_core.bootstrap.App``)."""

    tokens: Tokens
    reads: TenantReads
    store: BlobStore
    audit: AuditLog

    @property
    def admin(self) -> TenantProvisioning: ...

    @property
    def console(self) -> Console:
        """Raises ConfigError when the console cannot run (production without its secret)."""
        ...


def mount_console(app: FastAPI, sources: ApiSources, settings: Settings) -> None:
    """The web console under ``/console/`` (``/`` leads there); without its
    secret in production a page that says so, and a warning in the log."""
    try:
        console = build_console(sources.console, settings.api_trusted_proxies)
    except ConfigError as exc:
        log.warning("console off", extra={"reason": str(exc)})
        console = console_off("INGEST_CONSOLE_SECRET is not set; see docs/console.md.")

    async def to_console(request: Request) -> Response:
        return RedirectResponse("/console/", 307)

    # Starlette routes, not FastAPI's: no parameters to read, nothing in the OpenAPI document.
    app.add_route("/", to_console, methods=["GET"], include_in_schema=False)
    app.add_route("/console", to_console, methods=["GET"], include_in_schema=False)
    app.mount("/console", console)


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
    mount_console(app, sources, settings)
    cert, key = settings.api_tls_cert, settings.api_tls_key
    options = ServeOptions(
        tls_cert=str(cert) if cert else None,
        tls_key=str(key) if key else None,
        log_name="ingest.api",
    )
    await serve_asgi(app, settings.api_listen, options, task_status=task_status)
