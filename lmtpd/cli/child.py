"""One serving process of ``ingest serve --processes N`` (``python -m lmtpd.cli.child``),
started by :mod:`lmtpd.cli.supervisor`, never by hand.

It accepts LMTP (and milter) connections on listening sockets its supervisor bound
and passed down (``--lmtp-fd``, ``--milter-fd``), serves its metrics on a private
unix socket (``--metrics``) for the supervisor to merge, writes one byte on
``--ready-fd`` once all of them listen, and drains like the single process on
SIGTERM/SIGINT or when ``--lifeline-fd`` reaches its end (the supervisor died).
Every log line carries ``process``: its index among the serving processes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket as stdlib_socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio_asyncio

from ingest_core.errors import ConfigError, IngestError
from ingest_core.logs import JsonFormatter, configure_logging
from ingest_core.settings import Settings
from ingest_core.telemetry import configure_tracing
from lmtpd.cli.serve import milter_check, server_config
from lmtpd.http import HttpServer
from lmtpd.listeners import fd_listen, format_address
from lmtpd.metrics import ServeMetrics
from lmtpd.server import LmtpServer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest_core.ports import InboundChannelPort

log = logging.getLogger("ingest.serve")
milter_log = logging.getLogger("ingest.milter")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What the supervisor hands a serving process on its command line."""

    index: int
    lmtp_fds: tuple[int, ...]
    milter_fds: tuple[int, ...]
    metrics_path: str
    ready_fd: int
    lifeline_fd: int

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "lmtpd.cli.child", "--index", str(self.index)]
        for fd in self.lmtp_fds:
            args += ["--lmtp-fd", str(fd)]
        for fd in self.milter_fds:
            args += ["--milter-fd", str(fd)]
        args += ["--metrics", self.metrics_path, "--ready-fd", str(self.ready_fd)]
        return [*args, "--lifeline-fd", str(self.lifeline_fd)]

    @property
    def fds(self) -> tuple[int, ...]:
        """The descriptors the process must inherit."""
        return (*self.lmtp_fds, *self.milter_fds, self.ready_fd, self.lifeline_fd)


def _parse(argv: Sequence[str] | None) -> ChildSpec:
    parser = argparse.ArgumentParser(prog="python -m lmtpd.cli.child")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--lmtp-fd", type=int, action="append", required=True)
    parser.add_argument("--milter-fd", type=int, action="append", default=[])
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    args = parser.parse_args(argv)
    return ChildSpec(
        index=args.index,
        lmtp_fds=tuple(args.lmtp_fd),
        milter_fds=tuple(args.milter_fd),
        metrics_path=args.metrics,
        ready_fd=args.ready_fd,
        lifeline_fd=args.lifeline_fd,
    )


def main(argv: Sequence[str] | None = None) -> int:
    spec = _parse(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    mark_process(spec.index)
    configure_tracing("order-ingest-serve")
    from ingest_core import bootstrap

    try:
        with bootstrap.open_app(settings) as app:
            trio.run(serve_child, settings, app.service, spec)
    except IngestError as exc:
        log.error("serving process failed", extra={"error": str(exc)})
        return 1
    return 0


async def serve_child(settings: Settings, port: InboundChannelPort, spec: ChildSpec) -> None:
    """LMTP, the milter and the private metrics endpoint until told to stop; then drain."""
    metrics = ServeMetrics()
    server = LmtpServer(port, server_config(settings), metrics)
    async with trio.open_nursery() as nursery:

        async def lmtp(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            await server.serve(fd_listen(spec.lmtp_fds), task_status=task_status)
            nursery.cancel_scope.cancel()

        nursery.start_soon(_on_signals, server)
        nursery.start_soon(_on_lifeline_end, spec.lifeline_fd, server)
        await nursery.start(lmtp)
        if spec.milter_fds:
            await nursery.start(_milter, settings, port, server, metrics, spec.milter_fds)
        http = HttpServer(metrics, shutting_down=server.closing.is_set)
        await nursery.start(http.serve, f"unix:{spec.metrics_path}")
        os.write(spec.ready_fd, b"1")
        os.close(spec.ready_fd)


async def _on_signals(server: LmtpServer) -> None:
    """Every SIGTERM/SIGINT starts (or repeats) the drain: a terminal's SIGINT and the
    supervisor's SIGTERM may both arrive, and the second must not kill the process."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not server.closing.is_set():
                log.info("shutting down", extra={"signal": signal.Signals(signum).name})
            server.shutdown()


async def _on_lifeline_end(fd: int, server: LmtpServer) -> None:
    """The supervisor holds the other end: its end of file means the supervisor is gone."""
    async with trio.lowlevel.FdStream(fd) as lifeline:
        while await lifeline.receive_some(64):
            pass
    log.warning("supervisor gone; shutting down")
    server.shutdown()


async def _milter(
    settings: Settings,
    port: InboundChannelPort,
    server: LmtpServer,
    metrics: ServeMetrics,
    fds: Sequence[int],
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The milter of :mod:`lmtpd.milter` on inherited sockets: its app and guard as
    ``serve_milter`` builds them, served with ``asyncio.start_server(sock=…)``
    (``serve_milter`` binds an address itself)."""
    from lmtpd.milter import SHUTDOWN_TIMEOUT_S, _guarded, _milter_backend, build_milter_app

    check, role = milter_check(settings, port, server, metrics)
    backend = _milter_backend(build_milter_app(check, role))
    handler = _guarded(backend.handle_connection, settings.milter_allow_from)
    socks = [stdlib_socket.socket(fileno=fd) for fd in fds]

    async def start() -> list[asyncio.base_events.Server]:
        return [await asyncio.start_server(handler, sock=sock) for sock in socks]

    async def stop(servers: list[asyncio.base_events.Server]) -> None:
        """As ``lmtpd.milter._stop``: listeners, then sessions, then wait."""
        for milter_server in servers:
            milter_server.close()
        await backend.shutdown()
        for milter_server in servers:
            await milter_server.wait_closed()

    async with trio_asyncio.open_loop():
        servers = await trio_asyncio.aio_as_trio(start)()
        milter_log.info("milter listening", extra={"listen": _name(socks[0])})
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_TIMEOUT_S):
                await trio_asyncio.aio_as_trio(stop)(servers)


def _name(sock: stdlib_socket.socket) -> str:
    name = sock.getsockname()
    return f"unix:{name}" if isinstance(name, str) else format_address(name[0], name[1])


class _WithProcess(logging.Formatter):
    """Adds ``process`` (this serving process's index) to each line of the formatter
    it wraps. LogRecord's own ``process`` attribute (the pid) keeps the name out of
    ``extra=`` and the log context, so it is added to the formatted line."""

    def __init__(self, inner: logging.Formatter, index: int) -> None:
        super().__init__()
        self._inner = inner
        self._index = index

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        if isinstance(self._inner, JsonFormatter):  # one JSON object: {"ts": …, …}
            return f'{{"process": {self._index}, {line[1:]}'
        first, newline, rest = line.partition("\n")  # a traceback may follow
        return f"{first} process={self._index}{newline}{rest}"


def mark_process(index: int) -> None:
    """Every log line of this process carries ``process=index``."""
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None:
            handler.setFormatter(_WithProcess(handler.formatter, index))


if __name__ == "__main__":
    sys.exit(main())
