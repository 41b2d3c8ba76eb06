"""The trio LMTP server: its listeners served by ``trio.serve_listeners``, one
task per connection (the pump is :mod:`lmtpd.session`), and the core reached
through an :class:`~lmtpd.batcher.AcceptBatcher`: one worker-thread call per
batch of messages, not per message."""

from __future__ import annotations

import logging
import secrets
import socket as stdlib_socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ingest_core.logs import log_context
from ingest_core.settings import Settings
from lmtpd.batcher import AcceptBatcher, Batch
from lmtpd.listeners import Network, bound_address, open_listeners
from lmtpd.metrics import ServeMetrics
from lmtpd.session import INTERNAL_ERROR, Session, peer_text

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ingest_core.ports import Delivery, InboundChannelPort, RecipientOutcome

__all__ = ["INTERNAL_ERROR", "LmtpServer", "ServerConfig"]

log = logging.getLogger("ingest.lmtp")


_DEFAULTS = Settings()  # one source for the limits' defaults (docs/configuration.md)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the server needs of the settings; ``lmtpd.cli.serve.server_config`` maps them."""

    hostname: str = "ingest"
    max_message_bytes: int = _DEFAULTS.max_message_bytes
    max_recipients: int = _DEFAULTS.max_recipients
    max_line_length: int = _DEFAULTS.max_line_length
    max_errors: int = 20  # protocol errors before 421 and close (Postfix's hard limit)
    max_connections: int = _DEFAULTS.max_connections
    command_timeout_s: float = _DEFAULTS.command_timeout_s
    data_timeout_s: float = _DEFAULTS.data_timeout_s
    shutdown_grace_s: float = _DEFAULTS.shutdown_grace_s
    allow_from: tuple[Network, ...] = _DEFAULTS.lmtp_allow_from
    spool_memory_bytes: int = _DEFAULTS.spool_memory_bytes
    spool_dir: Path | None = None
    worker_threads: int = 32  # recipient checks that must ask the database
    max_batch: int = 64  # messages handed to the core in one worker-thread call
    batch_lanes: int = 2  # such calls in flight at once


class LmtpServer:
    """Serves LMTP on listeners; delivers through an :class:`InboundChannelPort`."""

    def __init__(
        self,
        port: InboundChannelPort,
        config: ServerConfig | None = None,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.port = port
        self.config = config or ServerConfig()
        self.metrics = metrics or ServeMetrics()
        self.metrics.connections_open.set_function(lambda: self.active)
        self.limiter = trio.CapacityLimiter(self.config.worker_threads)
        self.batcher: AcceptBatcher[Delivery, list[RecipientOutcome]] = AcceptBatcher(
            self._accept_batch, max_batch=self.config.max_batch, lanes=self.config.batch_lanes
        )
        self.active = 0
        self.address: str | None = None
        self._closing = trio.Event()
        self.idle_reads: set[trio.CancelScope] = set()
        self._listeners_scope: trio.CancelScope | None = None

    async def serve(
        self,
        listen: str,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`shutdown`; then let in-flight transactions finish
        within ``shutdown_grace_s`` and return."""
        listeners = await open_listeners(listen)
        self.address = bound_address(listeners)
        log.info("lmtp listening", extra={"listen": self.address})
        async with trio.open_nursery() as batches:
            await batches.start(self.batcher.run)
            try:
                async with trio.open_nursery() as connections:
                    with trio.CancelScope() as self._listeners_scope:
                        task_status.started(self.address)
                        await trio.serve_listeners(
                            self.handle, listeners, handler_nursery=connections
                        )
                    for listener in listeners:
                        await listener.aclose()
                    grace = self.config.shutdown_grace_s
                    connections.cancel_scope.deadline = trio.current_time() + grace
            finally:
                self.batcher.close()  # the batches in flight finish first
        log.info("lmtp stopped", extra={"listen": self.address})

    @property
    def closing(self) -> trio.Event:
        """Set once shutdown began."""
        return self._closing

    def shutdown(self) -> None:
        """Stop accepting; idle connections get 421 and in-flight ones may finish."""
        self._closing.set()
        if self._listeners_scope is not None:
            self._listeners_scope.cancel()
        for scope in list(self.idle_reads):
            scope.cancel()

    def _accept_batch(self, deliveries: Sequence[Delivery]) -> Batch[list[RecipientOutcome]]:
        """In a worker thread: a batch through the core; enqueueing its jobs is
        left for after the replies."""
        batch = self.port.accept_batch(deliveries)
        jobs = batch.jobs
        return batch.outcomes, (lambda: self.port.schedule(jobs)) if jobs else None

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One connection, from greeting to close. Never raises for peer behaviour.
        Its log lines carry ``conn``; a transaction's also ``txn`` and ``message_id``."""
        peer = _peer_of(stream)
        self.active += 1
        with log_context(conn=secrets.token_hex(4)):
            try:
                await Session(self, stream, peer).run()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.info("connection lost", extra={"peer": peer_text(peer)})
            except Exception:
                log.exception("connection failed", extra={"peer": peer_text(peer)})
            finally:
                self.active -= 1
                with trio.move_on_after(1) as cleanup:
                    cleanup.shield = True
                    await stream.aclose()


def _peer_of(stream: trio.abc.Stream) -> object:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "memory"
    try:
        peer: object = sock.getpeername()
    except OSError:
        return None
    if sock.family == stdlib_socket.AF_UNIX:
        return peer if isinstance(peer, str) and peer else "unix"
    return peer
