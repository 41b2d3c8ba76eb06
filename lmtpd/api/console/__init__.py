"""The web console (docs/console.md): server-rendered pages under ``/console/``
on the API listener, for operators (and, read-only, for one tenant's token).

No JavaScript: every page and form works without it, and the Content-Security-
Policy allows no script at all. Styles come from one file of our own. Sender
text is never rendered as HTML: Jinja2 escapes every value, bodies are shown as
text, and downloads are ``Content-Disposition: attachment`` with ``nosniff``.
"""

from __future__ import annotations

import html
import logging
from importlib import resources
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ingest_core.errors import Unavailable
from lmtpd.api.console.actions import Actions
from lmtpd.api.console.base import ConsoleBase
from lmtpd.api.console.pages import Pages

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ingest_core.console.service import Console
    from ingest_core.settings import Network

__all__ = ["CSP", "build_console", "console_off"]

log = logging.getLogger("ingest.console")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds the console's headers to every response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS} | {b"cache-control"}
                headers = [(n, v) for n, v in message.get("headers", []) if n not in names]
                headers += [*SECURITY_HEADERS, (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_CSS = resources.files("lmtpd.api.console").joinpath("static", "console.css")


async def _stylesheet(request: Request) -> Response:
    return Response(_CSS.read_bytes(), media_type="text/css; charset=utf-8")


def build_console(console: Console, trusted_proxies: Sequence[Network] = ()) -> ASGIApp:
    """The console app, to be mounted at ``/console``."""
    base = ConsoleBase(console, trusted_proxies)
    pages, actions = Pages(base), Actions(base)

    async def not_found(request: Request, exc: Exception) -> Response:
        return base.error(request, 404)

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("console dependency unavailable", extra={"error": str(exc)})
        return base.error(request, 503)

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("console request failed", exc_info=exc)
        return base.error(request, 500)

    app = Starlette(
        routes=[
            Route("/", pages.home, methods=["GET"]),
            Route("/static/console.css", _stylesheet, methods=["GET"]),
            Route("/sign-in", actions.sign_in_page, methods=["GET"]),
            Route("/sign-in", actions.sign_in, methods=["POST"]),
            Route("/sign-out", actions.sign_out, methods=["POST"]),
            Route("/messages", pages.messages, methods=["GET"]),
            Route("/messages/{message}", pages.message, methods=["GET"]),
            Route("/messages/{message}/raw", pages.raw, methods=["GET"]),
            Route("/messages/{message}/attachments/{attachment}", pages.attachment),
            Route("/messages/{message}/{action}", actions.confirm, methods=["GET"]),
            Route("/messages/{message}/{action}", actions.act, methods=["POST"]),
            Route("/quarantine", pages.quarantine, methods=["GET"]),
            Route("/failed", pages.failed, methods=["GET"]),
            Route("/tenants", pages.tenants, methods=["GET"]),
        ],
        exception_handlers={
            404: not_found,
            405: not_found,
            Unavailable: unavailable,
            Exception: failed,
        },
    )
    return SecurityHeaders(app)


def console_off(reason: str) -> ASGIApp:
    """What ``/console/`` answers when the console cannot run (``reason`` is ours)."""
    page = (
        "<!doctype html><meta charset=utf-8><title>Console off</title>"
        f"<h1>The console is off</h1><p>{html.escape(reason)}</p>"
    ).encode()

    async def off(request: Request) -> Response:
        return HTMLResponse(page, 503)

    return SecurityHeaders(Starlette(routes=[Route("/{path:path}", off)]))
