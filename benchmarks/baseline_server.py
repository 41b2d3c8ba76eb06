"""The baseline front end: aiosmtpd's ``LMTP`` class over the same core.

This is the server the original plan would have built: aiosmtpd's asyncio
``Controller`` with a handler whose ``handle_RCPT`` asks
``InboundService.check_recipient`` and whose ``handle_DATA`` hands the whole
message (aiosmtpd has read it into memory) to ``InboundService.accept`` in a
worker thread. Storage, database, queue and thread count are the ones
``ingest serve`` uses, so a comparison measures the front end only.

aiosmtpd's LMTP sends one reply after the data whatever the number of
recipients, so this server takes one recipient per message.

    INGEST_DATABASE_URL=... INGEST_DATA_DIR=... python -m benchmarks.baseline_server --port 2525

Prints ``READY host:port`` on stdout once it accepts connections; stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from ingest_core.bootstrap import open_app
from ingest_core.logs import configure_logging
from ingest_core.ports import Envelope, RecipientDecision, Reply
from ingest_core.settings import Settings
from ingest_core.spool import Spool

if TYPE_CHECKING:
    from ingest_core.ports import InboundChannelPort

# The trio server's worker-thread limit (lmtpd.server.ServerConfig.worker_threads).
WORKER_THREADS = 32
INTERNAL_ERROR = Reply(451, "4.3.0", "Temporary local problem, try again later")


def _line(reply: Reply) -> str:
    return f"{reply.code} {reply.enhanced} {reply.text}"


class AcceptHandler:
    """aiosmtpd handler hooks calling the core in the loop's executor."""

    def __init__(self, port: InboundChannelPort) -> None:
        self._port = port
        self._decisions: dict[int, RecipientDecision] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if envelope.rcpt_tos:
            return "452 4.5.3 One recipient per message here"
        loop = asyncio.get_running_loop()
        decision = await loop.run_in_executor(None, self._port.check_recipient, address, False)
        if not decision.accepted:
            return _line(decision.reply)
        envelope.rcpt_tos.append(address)
        self._decisions[id(envelope)] = decision
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        decision = self._decisions.pop(id(envelope), None)
        if decision is None:
            return _line(INTERNAL_ERROR)
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(None, self._accept, envelope, decision)
        except Exception:
            return _line(INTERNAL_ERROR)
        return _line(reply)

    def _accept(self, envelope: Any, decision: RecipientDecision) -> Reply:
        spool = Spool.from_bytes(envelope.content)
        core_envelope = Envelope(
            mail_from=envelope.mail_from,
            recipients=(decision,),
            peer=None,
        )
        [outcome] = self._port.accept(core_envelope, spool)
        return outcome.reply


class LmtpController(Controller):
    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


def serve(port: int, settings: Settings) -> None:
    configure_logging(settings.log_format)
    # aiosmtpd logs every connection and command at INFO; ours logs outcomes only.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    with open_app(settings) as app:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(WORKER_THREADS))
        controller = LmtpController(
            AcceptHandler(app.service),
            hostname="127.0.0.1",
            port=port,
            loop=loop,
            data_size_limit=settings.max_message_bytes,
            timeout=int(settings.data_timeout_s),
        )
        controller.start()
        print(f"READY 127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        main_loop = asyncio.new_event_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            main_loop.add_signal_handler(signum, stop.set)
        try:
            main_loop.run_until_complete(stop.wait())
        finally:
            controller.stop()
            main_loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aiosmtpd LMTP baseline over ingest_core")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.port, Settings.from_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
