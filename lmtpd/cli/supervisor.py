"""`ingest serve --processes N` (N > 1): a supervisor and N serving processes.

The supervisor binds the LMTP and milter listening sockets once and starts N
children (``python -m lmtpd.cli.child``) that inherit them and accept on them:
the kernel hands each connection to whichever child accepts first. Inherited
sockets rather than ``SO_REUSEPORT``: they work for ``unix:`` listeners too, no
child races another for the port, and connections waiting in the backlog survive
a child's death or drain (the queue belongs to the supervisor's socket; with
``SO_REUSEPORT`` each child's own queue is reset when it closes).

The supervisor owns what there is one of: the embedded Postgres (started through
bootstrap before it runs, its URL handed to the children), the HTTP endpoint
(``/readyz`` adds ``lmtp``: ok when all N children listen; ``/metrics`` merges
theirs, :mod:`lmtpd.cli.merged_metrics`), the tenant API (it only reads Postgres
and the object store) and the optional worker child. A child
that exits unexpectedly is restarted after a delay that doubles while it keeps
dying fast (``RESTART_DELAY_S`` up to ``MAX_RESTART_DELAY_S``). SIGTERM/SIGINT is
forwarded to every child as SIGTERM; each drains within
``INGEST_SHUTDOWN_GRACE_S``; the supervisor waits for them, then returns.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from lmtpd.cli.child import ChildSpec
from lmtpd.cli.merged_metrics import MergedMetrics
from lmtpd.cli.serve import (
    announce_ready,
    api_endpoint,
    http_endpoint,
    listen_error,
    supervise_worker,
)
from lmtpd.http import HttpServer
from lmtpd.listeners import bound_address, open_listeners

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ingest_core.settings import Settings
    from lmtpd.api import ApiSources
    from lmtpd.cli.serve import Probes

log = logging.getLogger("ingest.serve")

RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 5.0
STABLE_AFTER_S = 10.0
"""A child that ran this long before exiting is restarted after the shortest delay."""
KILL_MARGIN_S = 15.0
"""How long past the grace period a child may take to exit before it is killed."""


@dataclass
class _Slot:
    index: int
    metrics_path: Path
    process: trio.Process | None = None
    ready: bool = False


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        count: int,
        private_dir: Path,
        *,
        child_env: Mapping[str, str],
        milter: bool,
    ) -> None:
        self.settings = settings
        self.child_env = {**os.environ, **child_env}
        self.milter = milter
        self.closing = trio.Event()
        self.all_ready = trio.Event()
        self.slots = [_Slot(i, private_dir / f"metrics-{i}.sock") for i in range(count)]
        self.metrics: MergedMetrics | None = None
        self._lmtp_fds: tuple[int, ...] = ()
        self._milter_fds: tuple[int, ...] = ()
        # Children read the end of this pipe; it ends when the supervisor does.
        self._lifeline_r, self._lifeline_w = os.pipe()

    @property
    def up(self) -> int:
        return sum(slot.ready for slot in self.slots)

    def lmtp_status(self) -> dict[str, object]:
        """The ``lmtp`` entry of ``/readyz``."""
        return {"ok": self.up == len(self.slots), "processes": len(self.slots), "up": self.up}

    async def run(
        self,
        probes: Probes | None,
        worker_env: Mapping[str, str] | None,
        setup: Mapping[str, object] | None = None,
        api: ApiSources | None = None,
    ) -> None:
        settings = self.settings
        lmtp = await _listen("INGEST_LMTP_LISTEN", settings.lmtp_listen)
        try:
            milter = (
                await _listen("INGEST_MILTER_LISTEN", settings.milter_listen) if self.milter else []
            )
        except BaseException:
            for listener in lmtp:
                await listener.aclose()
            raise
        self._lmtp_fds = tuple(listener.socket.fileno() for listener in lmtp)
        self._milter_fds = tuple(listener.socket.fileno() for listener in milter)
        address = bound_address(lmtp)
        log.info("lmtp listening", extra={"listen": address, "processes": len(self.slots)})
        self.metrics = MergedMetrics(
            [slot.metrics_path for slot in self.slots], probes, processes_up=lambda: self.up
        )
        http = HttpServer(
            self.metrics, probes, shutting_down=self.closing.is_set, lmtp_status=self.lmtp_status
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._on_signals)
                if settings.http_enabled:
                    await nursery.start(http_endpoint, http, settings.http_listen)
                api_address = None
                if api is not None and settings.api_enabled:
                    registry = self.metrics.registry
                    api_address = await nursery.start(api_endpoint, api, settings, registry)
                nursery.start_soon(self._announce, address, http, api_address, probes, setup or {})
                if worker_env is not None:
                    nursery.start_soon(supervise_worker, worker_env, self.closing)
                async with trio.open_nursery() as children:
                    for slot in self.slots:
                        children.start_soon(self._keep_running, slot)
                nursery.cancel_scope.cancel()
        finally:
            for listener in [*lmtp, *milter]:
                with trio.CancelScope(shield=True):
                    await listener.aclose()
            os.close(self._lifeline_r)
            os.close(self._lifeline_w)
        log.info("lmtp stopped", extra={"listen": address})

    async def _on_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self.closing.is_set():
                    log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                    self.closing.set()

    async def _announce(
        self,
        address: str,
        http: HttpServer,
        api_address: str | None,
        probes: Probes | None,
        setup: Mapping[str, object],
    ) -> None:
        await self.all_ready.wait()
        log.info(
            "listening",
            extra={
                "lmtp": address,
                "http": http.address,
                "api": api_address,
                "processes": len(self.slots),
            },
        )
        await announce_ready(probes, setup)

    async def _keep_running(self, slot: _Slot) -> None:
        """Run the child of ``slot`` until shutdown, restarting it when it exits."""
        delay = RESTART_DELAY_S
        while not self.closing.is_set():
            started = trio.current_time()
            code = await self._run_child(slot)
            if self.closing.is_set():
                return
            if trio.current_time() - started >= STABLE_AFTER_S:
                delay = RESTART_DELAY_S
            log.warning(
                "lmtp process exited; restarting",
                extra={"child": slot.index, "code": code, "backoff_s": delay},
            )
            assert self.metrics is not None
            self.metrics.retire(slot.index)
            with trio.move_on_after(delay):
                await self.closing.wait()
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    async def _run_child(self, slot: _Slot) -> int:
        """Start the child, wait for it to exit; SIGTERM it on shutdown. Its exit code."""
        ready_r, ready_w = os.pipe()
        spec = ChildSpec(
            index=slot.index,
            lmtp_fds=self._lmtp_fds,
            milter_fds=self._milter_fds,
            metrics_path=str(slot.metrics_path),
            ready_fd=ready_w,
            lifeline_fd=self._lifeline_r,
        )
        try:
            process = await trio.lowlevel.open_process(
                spec.argv(), env=self.child_env, stdin=subprocess.DEVNULL, pass_fds=spec.fds
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        slot.process = process
        log.info("lmtp process started", extra={"child": slot.index, "pid": process.pid})
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._await_ready, slot, ready_r)
                nursery.start_soon(self._stop_on_closing, slot, process)
                code = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            slot.ready = False
            with trio.CancelScope(shield=True):
                if process.returncode is None:  # the supervisor itself failed
                    process.send_signal(signal.SIGTERM)
                    with trio.move_on_after(self.settings.shutdown_grace_s + KILL_MARGIN_S):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
        if self.closing.is_set():
            log.info("lmtp process stopped", extra={"child": slot.index, "code": code})
        return code

    async def _await_ready(self, slot: _Slot, ready_fd: int) -> None:
        async with trio.lowlevel.FdStream(ready_fd) as ready:
            if not await ready.receive_some(1):
                return  # exited before it listened
        slot.ready = True
        log.info("lmtp process ready", extra={"child": slot.index})
        if self.up == len(self.slots):
            self.all_ready.set()

    async def _stop_on_closing(self, slot: _Slot, process: trio.Process) -> None:
        await self.closing.wait()
        process.send_signal(signal.SIGTERM)
        await trio.sleep(self.settings.shutdown_grace_s + KILL_MARGIN_S)
        log.error("lmtp process did not stop in time; killing it", extra={"child": slot.index})
        process.kill()


async def _listen(variable: str, listen: str) -> list[trio.SocketListener]:
    try:
        return await open_listeners(listen)
    except OSError as exc:
        raise listen_error(variable, listen, exc) from exc


async def run_supervisor(
    settings: Settings,
    count: int,
    *,
    child_env: Mapping[str, str],
    milter: bool,
    worker_env: Mapping[str, str] | None,
    probes: Probes | None = None,
    setup: Mapping[str, object] | None = None,
    api: ApiSources | None = None,
) -> None:
    """Serve with ``count`` child processes until a signal arrives; then drain them.
    ``api``: what the tenant API reads (none: no API). A listener that cannot be
    bound raises ConfigError."""
    with tempfile.TemporaryDirectory(prefix="ingest-serve-") as private:  # mode 0700
        supervisor = Supervisor(settings, count, Path(private), child_env=child_env, milter=milter)
        await supervisor.run(probes, worker_env, setup, api)
