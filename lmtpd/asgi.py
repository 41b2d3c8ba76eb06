"""Serving an ASGI app with hypercorn's trio worker inside our trio process.

We bind the listening sockets ourselves (:func:`lmtpd.listeners.open_listeners`:
``host:port``, ``[v6]:port``, ``unix:/path`` or inherited ``fd:3,4``) and hand
them to hypercorn as ``fd://`` binds. So an address that cannot be bound raises
a plain :class:`OSError` before anything is served, the bound address (port 0 in
tests) is known, and every listener spec works the same way as for LMTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

import hypercorn.trio
import trio
from hypercorn.config import Config

from lmtpd.listeners import bound_address, open_listeners

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework
    from starlette.types import ASGIApp, Receive, Scope, Send


class CapRequestHead:
    """ASGI middleware: 431 for a request whose header fields exceed ``max_bytes``.

    h11 caps a head that arrives in pieces (``h11_max_incomplete_size``); one that
    arrives whole in a single read is parsed, and capped here."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", b"23"),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"request head too large\n"})
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The few hypercorn settings we choose; the rest are hypercorn's defaults."""

    idle_timeout_s: float = 5.0  # a connection without a complete request is closed
    max_head_bytes: int = 8192  # a larger request head is refused with 431
    graceful_timeout_s: float = 1.0
    tls_cert: str | None = None
    tls_key: str | None = None
    log_name: str = "ingest.http"


def hypercorn_config(options: ServeOptions) -> Config:
    config = Config()
    config.keep_alive_timeout = options.idle_timeout_s
    config.h11_max_incomplete_size = options.max_head_bytes
    config.graceful_timeout = options.graceful_timeout_s
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger(options.log_name)
    if options.tls_cert and options.tls_key:
        config.certfile, config.keyfile = options.tls_cert, options.tls_key
    return config


async def serve_asgi(
    app: ASGIApp,
    listen: str,
    options: ServeOptions,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listen`` until cancelled; reports the bound address.

    Raises :class:`OSError` (unwrapped) when ``listen`` cannot be bound."""
    listeners = await open_listeners(listen)
    address = bound_address(listeners)
    config = hypercorn_config(options)
    # hypercorn takes ownership of the descriptors (socket.socket(fileno=…)).
    config.bind = [f"fd://{listener.socket.detach()}" for listener in listeners]
    async with trio.open_nursery() as nursery:
        # Starlette's loose ASGI types and hypercorn's precise ones describe one protocol.
        framework = cast("ASGIFramework", app)
        await nursery.start(partial(hypercorn.trio.serve, framework, config, mode="asgi"))
        task_status.started(address)
