"""The pump for one LMTP connection: bytes from the stream into
:mod:`lmtpd.protocol`, its events to the core, its replies back."""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING

import trio
from opentelemetry import trace

from ingest_core.addressing import DIRECTORY_UNAVAILABLE
from ingest_core.logs import bind
from ingest_core.ports import (
    Delivery,
    Envelope,
    Reason,
    RecipientDecision,
    RecipientOutcome,
    Reply,
)
from ingest_core.spool import SpoolWriter
from lmtpd import protocol as p
from lmtpd.listeners import peer_allowed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lmtpd.server import LmtpServer

log = logging.getLogger("ingest.lmtp")
tracer = trace.get_tracer("lmtpd.server")

NOT_ALLOWED = Reply(554, "5.7.1", "Not authorised to deliver here")
TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", "Too many connections, try again later")
TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.0", "Service shutting down, try again later")
INTERNAL_ERROR = Reply(451, "4.3.0", "Temporary local problem, try again later")
READ_SIZE = 65536


class Session:
    """The pump for one connection: bytes ↔ protocol events ↔ the core."""

    def __init__(self, server: LmtpServer, stream: trio.abc.Stream, peer: object) -> None:
        self.server = server
        self.config = server.config
        self.stream = stream
        self.peer = peer
        self.conn = p.LmtpConnection(
            hostname=self.config.hostname,
            max_message_bytes=self.config.max_message_bytes,
            max_recipients=self.config.max_recipients,
            max_line_length=self.config.max_line_length,
            max_errors=self.config.max_errors,
        )
        self.lhlo: str | None = None
        self.xforward: dict[str, str] = {}
        self.command_deadline: float | None = None
        # The socket's descriptor for replies sent without waiting (None: not a socket).
        self._fd: int | None = (
            stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None
        )
        self.reset()

    def reset(self) -> None:
        self.mail: p.MailFrom | None = None
        self.accepted: list[RecipientDecision] = []
        self.spool: SpoolWriter | None = None

    async def run(self) -> None:
        if not peer_allowed(self.peer, self.config.allow_from):
            log.warning("peer refused: not in allow-list", extra={"peer": peer_text(self.peer)})
            self.conn.refuse(NOT_ALLOWED)
        elif self.server.active > self.config.max_connections:
            log.warning("connection refused: limit reached", extra={"peer": peer_text(self.peer)})
            self.conn.refuse(TOO_MANY_CONNECTIONS)
        else:
            self.conn.greet()
        try:
            while not self.conn.closed:
                event = self.conn.next_event()
                if isinstance(event, p.NeedData):
                    if not await self.read_more():
                        break
                    continue
                self.command_deadline = None  # the next command gets its own
                if isinstance(event, p.Quit | p.ConnectionClosed):
                    break
                await self.on_event(event)
        finally:
            if self.spool is not None:
                self.spool.discard()
            await self.flush()

    async def read_more(self) -> bool:
        """Flush replies, then wait for more bytes within the applicable deadline.
        False when the session is over (closed, timed out, or shutting down)."""
        if not await self.flush() or self.conn.closed:
            return False
        idle = self.mail is None and not self.conn.in_data
        if self.server.closing.is_set() and idle:
            self.conn.refuse(SHUTTING_DOWN)
            return False
        data: bytes | None = None
        with trio.move_on_at(self._read_deadline()) as scope:
            if idle:  # shutdown() cancels idle reads; trio's receive loses no byte
                self.server.idle_reads.add(scope)
            try:
                data = await self._receive()
            finally:
                self.server.idle_reads.discard(scope)
        if data is None:
            reply = SHUTTING_DOWN if self.server.closing.is_set() else TIMEOUT
            log.info("closing connection", extra={"peer": peer_text(self.peer), "code": reply.code})
            self.conn.refuse(reply)
            return False
        self.conn.receive_data(data)
        return True

    async def _receive(self) -> bytes:
        """The next bytes from the peer (b"" at its end). On a socket: wait until
        it is readable, then read its descriptor. The stream would try a read
        first, and here that read nearly always fails (the peer sends after our
        reply): one system call per command saved, and the stream's layers."""
        if self._fd is None:
            return bytes(await self.stream.receive_some(READ_SIZE))
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"receive failed ({type(exc).__name__})") from exc

    def _read_deadline(self) -> float:
        """Message data: an idle limit, renewed by every read. A command line: one
        limit for the whole line, so a peer trickling a byte at a time is cut off."""
        now = trio.current_time()
        if self.conn.in_data:
            return now + self.config.data_timeout_s
        if self.command_deadline is None:
            self.command_deadline = now + self.config.command_timeout_s
        return self.command_deadline

    async def flush(self) -> bool:
        """Send queued replies; False if the peer would not take them in time."""
        for reply in self.conn.take_refusals():
            log.info(
                "command refused",
                extra={"peer": peer_text(self.peer), "code": reply.code,
                       "enhanced": reply.enhanced},
            )  # fmt: skip
            self.server.metrics.protocol_refusal(reply)
        out = self.conn.data_to_send()
        if not out:
            return True
        sent = self._send_now(out)
        if sent == len(out):
            return True
        with trio.move_on_after(self.config.command_timeout_s):
            await self.stream.send_all(out[sent:])
            return True
        log.info("peer not reading; closing", extra={"peer": peer_text(self.peer)})
        return False

    def _send_now(self, out: bytes) -> int:
        """As much of ``out`` as the socket takes without waiting (replies are
        small: nearly always all of it), written straight to its descriptor; the
        rest goes through the stream. Saves a scheduler round trip and a cancel
        scope per reply; the session still yields at every read and batch."""
        if self._fd is None:
            return 0
        try:
            return os.write(self._fd, out)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"send failed ({type(exc).__name__})") from exc

    async def on_event(self, event: object) -> None:
        match event:
            case p.Lhlo(hostname=name):
                self.lhlo = name
            case p.Xforward(attributes=attributes):
                self.xforward.update(attributes)
            case p.MailFrom():
                self.mail = event
                bind(txn=secrets.token_hex(4), message_id=None)
            case p.RcptTo(address=address):
                await self.on_rcpt(address)
            case p.DataStart():
                self.spool = SpoolWriter(
                    threshold=self.config.spool_memory_bytes,
                    directory=str(self.config.spool_dir) if self.config.spool_dir else None,
                )
            case p.BodyChunk(data=data):
                if self.spool is not None:
                    self.spool.write(data)
            case p.EndOfData():
                await self.on_end_of_data()
            case p.DataAborted(reason=reason):
                log.warning(
                    "message refused", extra={"peer": peer_text(self.peer), "reason": reason}
                )
                self.server.metrics.data_aborted(self.accepted, reason)
                self.end_transaction()
            case p.TransactionReset():
                self.end_transaction()

    async def on_rcpt(self, address: str) -> None:
        smtputf8 = bool(self.mail and self.mail.smtputf8)
        port = self.server.port
        try:
            decision = port.check_recipient_now(address, smtputf8)
            if decision is None:  # the directory must be asked: blocking I/O
                decision = await trio.to_thread.run_sync(
                    port.check_recipient, address, smtputf8, limiter=self.server.limiter
                )
        except Exception:
            log.exception("recipient check failed", extra={"peer": peer_text(self.peer)})
            decision = RecipientDecision(
                address, DIRECTORY_UNAVAILABLE, reason=Reason.DIRECTORY_UNAVAILABLE
            )
        if decision.reply.positive and not decision.accepted:
            log.error("recipient check returned a positive reply without a tenant")
            decision = RecipientDecision(address, INTERNAL_ERROR, reason=Reason.INTERNAL_ERROR)
        self.conn.answer_rcpt(decision.reply)
        if decision.accepted:
            self.accepted.append(decision)
        else:
            log.info(
                "recipient refused",
                extra={"recipient": address[:256], "code": decision.reply.code,
                       "reason": decision.reason.value},
            )  # fmt: skip
            self.server.metrics.recipient_refused(decision)

    async def on_end_of_data(self) -> None:
        if self.spool is None or self.mail is None:  # the protocol guarantees both
            self.conn.answer_data([INTERNAL_ERROR] * len(self.accepted))
            self.end_transaction()
            return
        spool = self.spool.finish()
        self.spool = None
        envelope = Envelope(
            mail_from=self.mail.address,
            recipients=tuple(self.accepted),
            smtputf8=self.mail.smtputf8,
            body=self.mail.body,
            lhlo=self.lhlo,
            peer=peer_text(self.peer),
            xforward=dict(self.xforward),
        )
        started = time.perf_counter()
        outcomes: Sequence[RecipientOutcome] = ()
        with tracer.start_as_current_span("lmtp.transaction") as span:
            span.set_attribute("lmtp.recipients", len(self.accepted))
            span.set_attribute("message.size", spool.size)
            try:
                delivery = Delivery(envelope, spool, contextvars.copy_context())
                outcomes = await self.server.batcher.submit(delivery)
                answers = _answers_for(self.accepted, outcomes)
            except Exception:
                log.exception("accept failed", extra={"peer": peer_text(self.peer)})
                answers = [(INTERNAL_ERROR, Reason.INTERNAL_ERROR)] * len(self.accepted)
            finally:
                spool.discard()
        replies = [reply for reply, _ in answers]
        self.conn.answer_data(replies)
        seconds = time.perf_counter() - started
        self.server.metrics.data_answered(self.accepted, answers, spool.size, seconds)
        self._log_transaction(outcomes, replies, spool.size, seconds)
        self.end_transaction()

    def _log_transaction(
        self,
        outcomes: Sequence[RecipientOutcome],
        replies: Sequence[Reply],
        size: int,
        seconds: float,
    ) -> None:
        """One line per transaction; ``message_id``: the ids of its 250 replies, comma-separated."""
        ids = dict.fromkeys(str(o.message_id) for o in outcomes if o.message_id is not None)
        bind(message_id=",".join(ids) or None)
        log.info(
            "transaction done",
            extra={
                "codes": [reply.code for reply in replies],
                "size": size,
                "duration_ms": round(seconds * 1000, 2),
                "postfix_queue_id": (self.xforward.get("IDENT") or "")[:32] or None,
            },
        )

    def end_transaction(self) -> None:
        if self.spool is not None:
            self.spool.discard()
        self.xforward = {}
        self.reset()
        bind(txn=None, message_id=None)


def _answers_for(
    accepted: Sequence[RecipientDecision], outcomes: Sequence[RecipientOutcome]
) -> list[tuple[Reply, Reason]]:
    """The outcomes' replies and reasons, checked to be one per accepted recipient in order."""
    if [o.address for o in outcomes] != [d.address for d in accepted]:
        log.error("core returned outcomes that do not match the recipients")
        return [(INTERNAL_ERROR, Reason.INTERNAL_ERROR)] * len(accepted)
    return [(o.reply, o.reason) for o in outcomes]


def peer_text(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
