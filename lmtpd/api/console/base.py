"""What every console handler shares: the templates, the session check, the
worker-thread hop to the core, and the fixed-text error pages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import jinja2
import trio
from starlette.responses import HTMLResponse, RedirectResponse

from lmtpd.api.console import views
from lmtpd.api.console.sessions import Session, SessionCookies, SignInFailures

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from starlette.requests import Request
    from starlette.responses import Response

    from ingest_core.console.service import Console
    from ingest_core.settings import Network

log = logging.getLogger("ingest.console")

ERRORS = {
    400: ("Bad request", "The form was out of date or incomplete. Go back, reload and try again."),
    403: ("Not allowed", "This sign-in may not do that."),
    404: ("Not found", "There is nothing here, or not for this sign-in."),
    429: ("Too many attempts", "Too many failed sign-ins from here; wait a minute."),
    500: ("Something failed", "The request failed on our side; it has been logged."),
    503: ("Unavailable", "A dependency is unavailable; try again shortly."),
}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lmtpd.api.console", "templates"),
        autoescape=True,  # every template: sender text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=views.when, size=views.size, show=views.show, part_indent=views.part_indent
    )
    return env


class ConsoleBase:
    def __init__(
        self, console: Console, trusted_proxies: Sequence[Network], worker_threads: int = 8
    ) -> None:
        self.console = console
        self.trusted_proxies = tuple(trusted_proxies)
        self.templates = environment()
        self.cookies = SessionCookies(console.secret, secure=console.secure_cookies)
        self.failures = SignInFailures()
        self.limiter = trio.CapacityLimiter(worker_threads)

    async def blocking(self, call: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(call, *args, limiter=self.limiter)

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            session=session, path=request.url.path, **context
        )
        return HTMLResponse(html, status)

    def error(self, request: Request, status: int, session: Session | None = None) -> HTMLResponse:
        title, detail = ERRORS[status]
        return self.render(request, "error.html", session, status, title=title, detail=detail)

    async def session(self, request: Request) -> Session | None:
        """The request's session, if it is still good: the operator not disabled,
        the token not revoked and its tenant active."""
        session = self.cookies.read(request)
        if session is None:
            return None
        if session.operator:
            record = await self.blocking(self.console.operators.repository.find, session.name)
            return session if record is not None and record.disabled_at is None else None
        if session.token_id is None:
            return None
        token = await self.blocking(self.console.tokens.repository.find, session.token_id)
        if token is None or token.revoked_at is not None or not token.tenant_active:
            return None
        return session if token.org_slug == session.org_slug else None

    @staticmethod
    def to_sign_in(request: Request) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(views.sign_in_url(target), 303)
