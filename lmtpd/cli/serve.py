"""`ingest serve`: the LMTP server, the milter, the HTTP endpoint (health, readiness,
metrics) and (optionally) a supervised worker process, in one trio process with
graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Protocol

import trio

from ingest_core import addressing
from ingest_core.ports import Reason, RecipientDecision
from lmtpd.http import HttpServer, Readiness
from lmtpd.metrics import BacklogSource, ServeMetrics
from lmtpd.server import LmtpServer, ServerConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ingest_core.ports import InboundChannelPort
    from ingest_core.settings import Settings

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
) -> None:
    """Run until a signal arrives; then drain and return. Without ``probes`` the
    HTTP endpoint checks no dependency and exports no queue or message counts."""
    metrics = ServeMetrics(probes)
    server = LmtpServer(port, server_config(settings), metrics)
    async with trio.open_nursery() as nursery:

        async def lmtp(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            await server.serve(settings.lmtp_listen, task_status=task_status)
            nursery.cancel_scope.cancel()

        nursery.start_soon(_on_signals, server)
        address = await nursery.start(lmtp)
        if milter:
            await nursery.start(_milter, settings, port, server, metrics)
        http = HttpServer(metrics, probes, shutting_down=server.closing.is_set)
        if settings.http_enabled:
            await nursery.start(http_endpoint, http, settings.http_listen)
        log.info("ready", extra={"lmtp": address, "http": http.address})
        if worker_env is not None:
            nursery.start_soon(supervise_worker, worker_env, server.closing)


async def _on_signals(server: LmtpServer) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutting down", extra={"signal": signal.Signals(signum).name})
            server.shutdown()
            return


async def http_endpoint(
    http: HttpServer, listen: str, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
) -> None:
    """The HTTP endpoint; a port it cannot bind is logged, and mail is still served."""
    try:
        await http.serve(listen, task_status=task_status)
    except OSError as exc:
        if http.address is not None:
            raise
        log.error(
            "http endpoint not started", extra={"listen": listen, "error": exc.strerror or ""}
        )
        task_status.started(None)


async def _milter(
    settings: Settings,
    port: InboundChannelPort,
    server: LmtpServer,
    metrics: ServeMetrics,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    from lmtpd.milter import serve_milter

    check, role = milter_check(settings, port, server, metrics)
    await serve_milter(
        settings.milter_listen, settings.milter_allow_from, check, role, task_status=task_status
    )


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
