"""`ingest serve`: the LMTP server, the milter, the HTTP endpoint (health, readiness,
metrics) and (optionally) a supervised worker process, in one trio process with
graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Protocol

import trio

from ingest_core import addressing
from ingest_core.errors import ConfigError, Unavailable
from ingest_core.ports import Reason, RecipientDecision
from lmtpd.backlog import BacklogSource
from lmtpd.http import HttpServer, Readiness
from lmtpd.metrics import ServeMetrics
from lmtpd.server import LmtpServer, ServerConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from prometheus_client import CollectorRegistry

    from ingest_core.ports import InboundChannelPort
    from ingest_core.settings import Settings
    from lmtpd.api import ApiSources

# allocations (less frees) between collections of the youngest generation (default 700)
GC_YOUNG_THRESHOLD = 10_000
log = logging.getLogger("ingest.serve")


class Probes(Readiness, BacklogSource, Protocol):
    """Readiness checks and scrape-time values (``ingest_core.bootstrap.App``)."""


def server_config(settings: Settings) -> ServerConfig:
    return ServerConfig(
        hostname=settings.domains[0],
        max_message_bytes=settings.max_message_bytes,
        max_recipients=settings.max_recipients,
        max_line_length=settings.max_line_length,
        max_connections=settings.max_connections,
        command_timeout_s=settings.command_timeout_s,
        data_timeout_s=settings.data_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        allow_from=settings.lmtp_allow_from,
        spool_memory_bytes=settings.spool_memory_bytes,
        spool_dir=settings.spool_dir,
    )


async def run_services(
    settings: Settings,
    port: InboundChannelPort,
    *,
    milter: bool,
    worker_env: Mapping[str, str] | None,
    probes: Probes | None = None,
    setup: Mapping[str, object] | None = None,
    api: ApiSources | None = None,
) -> None:
    """Run until a signal arrives; then drain and return. ``api``: what the tenant
    API on ``INGEST_API_LISTEN`` reads (none: no API). Without ``probes`` the
    HTTP endpoint checks no dependency and exports no queue or message counts.
    ``setup`` (data dir, database, object store, queue; no secrets) goes on the
    ``ready`` line, logged once the dependencies answer. A listener that cannot
    be bound raises ConfigError before anything is served."""
    metrics = ServeMetrics(probes)
    server = LmtpServer(port, server_config(settings), metrics)
    async with trio.open_nursery() as nursery:

        async def lmtp(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await server.serve(settings.lmtp_listen, task_status=task_status)
            except (OSError, BaseExceptionGroup) as exc:
                bind = bind_error(exc)
                if bind is None or server.address is not None:
                    raise
                raise listen_error("INGEST_LMTP_LISTEN", settings.lmtp_listen, bind) from bind
            nursery.cancel_scope.cancel()

        nursery.start_soon(_on_signals, server, nursery.cancel_scope)
        address = await nursery.start(lmtp)
        milter_address = None
        if milter:
            milter_address = await nursery.start(_milter, settings, port, server, metrics)
        http = HttpServer(metrics, probes, shutting_down=server.closing.is_set)
        if settings.http_enabled:
            await nursery.start(http_endpoint, http, settings.http_listen)
        api_address = None
        if api is not None and settings.api_enabled:
            api_address = await nursery.start(api_endpoint, api, settings, metrics.registry)
        log.info(
            "listening",
            extra={
                "lmtp": address,
                "milter": milter_address,
                "http": http.address,
                "api": api_address,
            },
        )
        settle_garbage_collector()
        nursery.start_soon(announce_ready, probes, setup or {})
        if worker_env is not None:
            nursery.start_soon(supervise_worker, worker_env, server.closing)


def settle_garbage_collector() -> None:
    """Once serving: what start-up made (modules, settings, pools, listeners)
    lives as long as the process, so it is frozen out of every later collection,
    and the youngest generation is collected less often. A delivery makes a few
    thousand short-lived objects that reference counting frees; at the default
    threshold the youngest generation was collected every few deliveries, and
    each collection of the oldest walked everything start-up made."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def _on_signals(server: LmtpServer, scope: trio.CancelScope) -> None:
    """The first SIGTERM/SIGINT drains; a second stops at once. Signals stay
    handled until the services end, so the process always exits through its
    cleanup (which releases the embedded database)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not server.closing.is_set():
                log.info("shutting down", extra={"signal": name})
                server.shutdown()
                continue
            log.warning("second signal: stopping without waiting", extra={"signal": name})
            scope.cancel()


def bind_error(exc: BaseException) -> OSError | None:
    """The OSError of a listener that could not be bound, raised alone or as the
    only error of (nested) exception groups; else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def listen_error(variable: str, listen: str, exc: OSError) -> ConfigError:
    """A listener that cannot be bound, as the one-line configuration error."""
    reason = exc.strerror or type(exc).__name__
    return ConfigError(
        f"{variable}: cannot listen on {listen} ({reason})"
        f" — stop what holds it or set {variable} to a free address"
    )


async def announce_ready(
    probes: Probes | None, setup: Mapping[str, object], interval_s: float = 1.0
) -> None:
    """Log ``ready`` once every readiness check passes; until then, log what
    fails (once per change)."""
    last: dict[str, str] | None = None
    while probes is not None:
        failing = await trio.to_thread.run_sync(_failing_checks, probes)
        if not failing:
            break
        if failing != last:
            log.warning("waiting for dependencies", extra=failing)
            last = failing
        await trio.sleep(interval_s)
    log.info("ready", extra=dict(setup))


def _failing_checks(probes: Probes) -> dict[str, str]:
    failing: dict[str, str] = {}
    for name, check in probes.readiness_checks().items():
        try:
            check()
        except Unavailable as exc:
            failing[name] = exc.cause
        except Exception as exc:
            failing[name] = type(exc).__name__
    return failing


async def http_endpoint(
    http: HttpServer, listen: str, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
) -> None:
    """The HTTP endpoint (health, readiness, metrics). A port it cannot bind
    raises ConfigError: a server without them would be killed by its
    orchestrator anyway, later and less clearly."""
    try:
        await http.serve(listen, task_status=task_status)
    except (OSError, BaseExceptionGroup) as exc:
        bind = bind_error(exc)
        if bind is None or http.address is not None:
            raise
        raise listen_error("INGEST_HTTP_LISTEN", listen, bind) from bind


async def api_endpoint(
    api: ApiSources,
    settings: Settings,
    registry: CollectorRegistry,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The tenant API, its metrics in ``registry`` (what ``/metrics`` serves); a
    port it cannot bind raises ConfigError, as for HTTP."""
    from lmtpd.api import serve_api

    try:
        await serve_api(api, settings, registry, task_status=task_status)
    except OSError as exc:
        raise listen_error("INGEST_API_LISTEN", settings.api_listen, exc) from exc


async def _milter(
    settings: Settings,
    port: InboundChannelPort,
    server: LmtpServer,
    metrics: ServeMetrics,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    from lmtpd.milter import serve_milter

    check, role = milter_check(settings, port, server, metrics)
    try:
        await serve_milter(
            settings.milter_listen, settings.milter_allow_from, check, role, task_status=task_status
        )
    except OSError as exc:  # serve_milter raises it only when it cannot listen
        raise listen_error("INGEST_MILTER_LISTEN", settings.milter_listen, exc) from exc


def milter_check(
    settings: Settings, port: InboundChannelPort, server: LmtpServer, metrics: ServeMetrics
) -> tuple[Callable[[str], Awaitable[RecipientDecision]], Callable[[str], bool]]:
    """The milter's recipient check (the LMTP server's own, on its thread limiter,
    counted in ``metrics``) and its role-address test."""

    async def check(address: str) -> RecipientDecision:
        try:
            decision = port.check_recipient_now(address, True)
            if decision is None:
                decision = await trio.to_thread.run_sync(
                    port.check_recipient, address, True, limiter=server.limiter
                )
        except Exception:  # the milter answers 451 4.4.3 for it
            metrics.milter_decision(
                RecipientDecision(
                    address, addressing.DIRECTORY_UNAVAILABLE, reason=Reason.DIRECTORY_UNAVAILABLE
                )
            )
            raise
        metrics.milter_decision(decision)
        return decision

    def role(address: str) -> bool:
        return addressing.is_role_address(address, settings.domains)

    return check, role


async def _terminate_on_shutdown(closing: trio.Event, process: trio.Process) -> None:
    await closing.wait()
    process.send_signal(signal.SIGTERM)


async def supervise_worker(env: Mapping[str, str], closing: trio.Event) -> None:
    """Keep one `ingest worker` child running until ``closing``; stop it with SIGTERM."""
    backoff = 1.0
    while not closing.is_set():
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "lmtpd.cli", "worker"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
        )
        log.info("worker started", extra={"pid": process.pid})
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_terminate_on_shutdown, closing, process)
                code = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    with trio.move_on_after(30):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
        if closing.is_set():
            return
        log.warning("worker exited; restarting", extra={"code": code, "backoff_s": backoff})
        await trio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
