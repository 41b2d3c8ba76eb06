"""The RCPT-time milter: Postfix asks us before it accepts a recipient (docs/architecture.md).

The milter applies the LMTP server's own recipient check, so an unknown or disabled
tenant is refused at the public edge (``550`` while the sender's MTA is still
connected) instead of bouncing later. The LMTP server checks again regardless.

purepythonmilter is asyncio; this module hosts it inside the trio process through
trio-asyncio: :func:`serve_milter` opens its own asyncio loop, so callers stay
plain trio. The library's own ``start_server`` installs SIGINT/SIGTERM handlers,
which would take signal handling away from the trio process, so we serve its
connection handler with ``asyncio.start_server`` ourselves. That leans on names
the library does not document; all of them are used in :func:`_milter_backend`.

This module deliberately has no ``from __future__ import annotations``:
purepythonmilter inspects each hook's return annotation with
``typing.get_type_hints`` to decide whether the hook replies, so the annotations
must be real objects at runtime.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio
import trio_asyncio
from purepythonmilter import (
    Continue,
    PurePythonMilter,
    RcptTo,
    RejectWithCode,
    TempFailWithCode,
    VerdictOrContinue,
)

from ingest_core.addressing import DIRECTORY_UNAVAILABLE
from ingest_core.ports import RecipientDecision, Reply
from ingest_core.text import smtp_safe
from lmtpd.listeners import Network, format_address, parse_listen, peer_allowed

log = logging.getLogger("ingest.milter")

RecipientCheck = Callable[[str], Awaitable[RecipientDecision]]
RoleAddress = Callable[[str], bool]
ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

CHECK_UNAVAILABLE = DIRECTORY_UNAVAILABLE
"""Our answer when the check itself fails: the sender's MTA retries later."""

DEFAULT_CHECK_TIMEOUT_S = 20.0
"""Below Postfix's ``milter_command_timeout`` (30 s by default): we answer 451 ourselves
instead of letting Postfix time out and apply ``milter_default_action``."""

SHUTDOWN_TIMEOUT_S = 5.0


# -- decisions → milter verdicts ---------------------------------------------------


def verdict_for(reply: Reply) -> VerdictOrContinue:
    """The milter response for a check's reply.

    Any positive reply continues: the milter only refuses early what the LMTP server
    would refuse anyway. A reply outside 4xx/5xx (a bug) fails temporarily.
    """
    if reply.positive:
        return Continue()
    code = _basic_code(reply.code)
    if code is None:
        return verdict_for(CHECK_UNAVAILABLE)
    enhanced = _enhanced_code(reply.enhanced, code[0])
    text = _reply_text(reply.text)
    if code[0] == 5:
        return RejectWithCode(primary_code=(5, code[1], code[2]), enhanced_code=enhanced, text=text)
    return TempFailWithCode(primary_code=(4, code[1], code[2]), enhanced_code=enhanced, text=text)


def _basic_code(code: int) -> tuple[Literal[4, 5], int, int] | None:
    if 400 <= code < 500:
        return (4, code // 10 % 10, code % 10)
    if 500 <= code < 600:
        return (5, code // 10 % 10, code % 10)
    return None


def _enhanced_code(text: str, klass: Literal[4, 5]) -> tuple[Literal[4, 5], int, int] | None:
    """``"5.1.1"`` → ``(5, 1, 1)``; None when malformed or of another class than the
    basic code (Postfix would otherwise pass on a contradictory reply)."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    if int(parts[0]) != klass:
        return None
    return (klass, int(parts[1]), int(parts[2]))


_reply_text = smtp_safe  # the text goes into an SMTP reply line and a C string


# -- the milter application --------------------------------------------------------


def build_milter_app(
    check: RecipientCheck,
    role_address: RoleAddress,
    *,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
) -> PurePythonMilter:
    """A milter that only looks at RCPT TO.

    ``check`` is a trio-flavoured async function; the hook runs on the asyncio side
    and crosses back into trio with ``trio_as_aio`` (a trio limiter used directly
    from asyncio fails). ``role_address`` lets ``postmaster@``/``abuse@`` through
    without asking ``check``: Postfix rewrites them before LMTP, so the LMTP rule
    for them (refuse) must not apply at the edge.
    """

    async def bounded_check(address: str) -> RecipientDecision:
        with trio.fail_after(check_timeout_s):
            return await check(address)

    async def on_rcpt_to(command: RcptTo) -> VerdictOrContinue:
        return await decide_recipient(command.address, bounded_check, role_address)

    return PurePythonMilter(name="ingest-milter", hook_on_rcpt_to=on_rcpt_to)


async def decide_recipient(
    address: str, check: RecipientCheck, role_address: RoleAddress
) -> VerdictOrContinue:
    """asyncio side: never raises into the milter; any failure is a 451 4.4.3."""
    try:
        if role_address(address):
            return Continue()
        loop = asyncio.get_running_loop()
        decision = await trio_asyncio.trio_as_aio(check, loop=loop)(address)
    except Exception:
        log.exception("milter recipient check failed", extra={"recipient": address})
        return verdict_for(CHECK_UNAVAILABLE)
    if not decision.reply.positive:
        log.info(
            "milter refused recipient",
            extra={
                "recipient": address,
                "code": decision.reply.code,
                "enhanced": decision.reply.enhanced,
            },
        )
    return verdict_for(decision.reply)


# -- hosting it ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MilterBackend:
    handle_connection: ConnectionHandler
    shutdown: Callable[[], Coroutine[Any, Any, None]]


def _milter_backend(app: PurePythonMilter) -> _MilterBackend:
    """The one place that uses purepythonmilter's undocumented server internals.

    ``PurePythonMilter._get_factory`` and ``MilterServer.handle_connection`` /
    ``.shutdown`` are what the library's ``start_server`` uses, minus its signal
    handlers. tests/server/test_milter_guard.py fails loudly if they change.
    """
    from purepythonmilter.server.milterserver import MilterServer

    server = MilterServer(app_factory=app._get_factory())
    return _MilterBackend(handle_connection=server.handle_connection, shutdown=server.shutdown)


def _guarded(handler: ConnectionHandler, allow_from: Sequence[Network]) -> ConnectionHandler:
    """Close connections from outside the allow-list before any milter byte."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        if peer_allowed(peername, allow_from):
            await handler(reader, writer)
            return
        log.warning("milter connection refused: peer not allowed", extra={"peer": str(peername)})
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return handle


async def _start(listen: str, handler: ConnectionHandler) -> tuple[asyncio.base_events.Server, str]:
    target = parse_listen(listen)
    if isinstance(target, str):
        server = await asyncio.start_unix_server(handler, target)
        return server, f"unix:{target}"
    host, port = target
    server = await asyncio.start_server(handler, host, port)
    bound = server.sockets[0].getsockname()
    return server, format_address(str(bound[0]), int(bound[1]))


async def _stop(server: asyncio.base_events.Server, backend: _MilterBackend) -> None:
    """Stop listening, close open milter sessions, then wait for the listener.

    Postfix treats a session cut short per ``milter_default_action`` (tempfail).
    The order matters on Python 3.12+, where ``wait_closed`` waits for every
    connection: those are only closed by ``backend.shutdown``.
    """
    server.close()
    await backend.shutdown()
    await server.wait_closed()


async def serve_milter(
    listen: str,
    allow_from: Sequence[Network],
    check: RecipientCheck,
    role_address: RoleAddress,
    *,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the milter on ``listen`` (``host:port``, ``[v6]:port`` or ``unix:/path``)
    until cancelled. Run it in a trio nursery; it opens its own trio-asyncio loop.

    ``check(address)`` is a trio async function returning the same
    :class:`RecipientDecision` the LMTP server acts on. Reports the bound address
    (``host:port`` or ``unix:/path``) through ``task_status``. Raises ``OSError``
    when it cannot listen.
    """
    app = build_milter_app(check, role_address, check_timeout_s=check_timeout_s)
    backend = _milter_backend(app)
    handler = _guarded(backend.handle_connection, allow_from)
    bind_error: OSError | None = None
    async with trio_asyncio.open_loop():
        try:
            server, bound = await trio_asyncio.aio_as_trio(_start)(listen, handler)
        except OSError as exc:
            bind_error = exc  # raised below, outside the loop's nursery: not in a group
        else:
            log.info("milter listening", extra={"listen": bound})
            try:
                task_status.started(bound)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_TIMEOUT_S):
                    await trio_asyncio.aio_as_trio(_stop)(server, backend)
    if bind_error is not None:
        raise bind_error
