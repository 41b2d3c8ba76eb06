"""The console's forms: sign-in (an operator's password, or a tenant API token
for a read-only view of that tenant), sign-out, and the two audited actions —
release a QUARANTINED message, replay a FAILED one. Each action is a GET that
shows what will happen and a form that POSTs it with the session's CSRF token."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse, Response

from ingest_core.console.reads import parse_id
from lmtpd.api.app import client_address
from lmtpd.api.console import views
from lmtpd.api.console.sessions import Session, csrf_matches, new_csrf

if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

    from lmtpd.api.console.base import ConsoleBase

log = logging.getLogger("ingest.console")
MAX_FIELD = 4096

ACTIONS = {
    "release": ("QUARANTINED", "Release", "released", "not-released"),
    "replay": ("FAILED", "Replay", "replayed", "not-replayed"),
}


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=8, max_part_size=MAX_FIELD)


class Actions:
    def __init__(self, base: ConsoleBase) -> None:
        self.base = base

    async def sign_in_page(self, request: Request) -> Response:
        return self._sign_in(request, status=200, failed=False)

    def _sign_in(self, request: Request, *, status: int, failed: bool) -> Response:
        token, cookie = self.base.cookies.sign_in_token(request)
        target = views.safe_next(request.query_params.get("next"))
        response = self.base.render(
            request, "sign_in.html", None, status, csrf=token, next=target, failed=failed
        )
        if cookie is not None:
            self.base.cookies.set_sign_in(response, cookie)
        return response

    async def sign_in(self, request: Request) -> Response:
        base = self.base
        address = client_address(request, base.trusted_proxies)
        if base.failures.blocked(address):
            return base.error(request, 429)
        form = await _form(request)
        if not base.cookies.sign_in_matches(request, str(form.get("csrf", ""))):
            return self._sign_in(request, status=400, failed=False)
        session = await self._authenticate(form)
        if session is None:
            base.failures.add(address)
            log.info("console sign-in refused", extra={"client": address})
            return self._sign_in(request, status=401, failed=True)
        log.info("console sign-in", extra={"actor": session.actor, "client": address})
        response = RedirectResponse(views.safe_next(str(form.get("next", ""))), 303)
        base.cookies.write(response, session)
        return response

    async def _authenticate(self, form: FormData) -> Session | None:
        console = self.base.console
        token = str(form.get("token", "")).strip()
        if token:
            principal = await self.base.blocking(console.tokens.authenticate, token)
            if principal is None or principal.admin:  # admin tokens provision; no console
                return None
            return Session(
                "tenant", principal.name, new_csrf(), principal.org_slug, principal.token_id
            )
        name = str(form.get("name", "")).strip().lower()
        password = str(form.get("password", ""))
        if not name or not password:
            return None
        found = await self.base.blocking(console.operators.authenticate, name, password)
        return Session("operator", found, new_csrf()) if found is not None else None

    async def sign_out(self, request: Request) -> Response:
        session = self.base.cookies.read(request)
        form = await _form(request)
        if session is None or not csrf_matches(session, form.get("csrf")):
            return self.base.error(request, 400, session)
        response = RedirectResponse(f"{views.PREFIX}/sign-in", 303)
        self.base.cookies.clear(response)
        return response

    async def confirm(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return base.error(request, 404, session)
        if not session.operator:
            return base.error(request, 403, session)
        message_id = parse_id(request.path_params["message"])
        detail = None
        if message_id is not None:
            detail = await base.blocking(base.console.reads.message, message_id, None)
        if detail is None:
            return base.error(request, 404, session)
        status, verb, _, _ = ACTIONS[action]
        return base.render(
            request, "confirm.html", session, m=detail, action=action, verb=verb, needed=status
        )

    async def act(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return base.error(request, 404, session)
        form = await _form(request)
        if not csrf_matches(session, form.get("csrf")):
            return base.error(request, 400, session)
        if not session.operator:
            return base.error(request, 403, session)
        message_id = parse_id(request.path_params["message"])
        if message_id is None:
            return base.error(request, 404, session)
        run = base.console.release if action == "release" else base.console.replay
        done = await base.blocking(run, message_id, session.actor)
        _, _, yes, no = ACTIONS[action]
        log.info(
            "console action",
            extra={"action": action, "message_id": str(message_id), "done": done},
        )
        target = f"{views.PREFIX}/messages/{message_id}?done={yes if done else no}"
        return RedirectResponse(target, 303)
