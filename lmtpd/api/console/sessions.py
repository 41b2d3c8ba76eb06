"""Console sessions: a signed cookie, CSRF tokens, and sign-in attempts counted.

The session is the cookie itself (itsdangerous, HMAC-SHA1 over the value with
the console secret, time stamped): who (an operator, or a tenant token's id),
and the session's CSRF token, which every form carries back. It is ``HttpOnly``,
``SameSite=Strict`` and, outside development, ``Secure`` (under the
``__Host-`` prefix, so no other path or subdomain can set it). Each request
checks again that the operator is not disabled, or that the token is live.

Before sign-in a second signed cookie holds the sign-in form's CSRF token
(double submit), so a cross-site page cannot sign a browser in as someone else.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

from lmtpd.api.failures import RecentFailures

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from starlette.responses import Response

SESSION_MAX_AGE_S = 12 * 3600
SIGN_IN_MAX_AGE_S = 3600


@dataclass(frozen=True, slots=True)
class Session:
    kind: Literal["operator", "tenant"]
    name: str  # the operator, or the token's name
    csrf: str
    org_slug: str | None = None  # a tenant token's tenant: the only one it sees
    token_id: str | None = None

    @property
    def operator(self) -> bool:
        return self.kind == "operator"

    @property
    def actor(self) -> str:
        """Who did it, for the audit log."""
        if self.operator:
            return f"console {self.name}"
        return f"token {self.name} ({self.token_id})"


class SessionCookies:
    def __init__(self, secret: str, *, secure: bool) -> None:
        self.secure = secure
        self.name = "__Host-ingest-console" if secure else "ingest-console"
        self.pre_name = "__Host-ingest-sign-in" if secure else "ingest-sign-in"
        self._session = URLSafeTimedSerializer(secret, salt="ingest.console.session")
        self._pre = URLSafeTimedSerializer(secret, salt="ingest.console.sign-in")

    def read(self, request: Request) -> Session | None:
        value = request.cookies.get(self.name)
        if not value:
            return None
        try:
            data = self._session.loads(value, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("k") not in ("operator", "tenant"):
            return None
        return Session(data["k"], str(data["n"]), str(data["c"]), data.get("o"), data.get("t"))

    def write(self, response: Response, session: Session) -> None:
        value = self._session.dumps(
            {
                "k": session.kind,
                "n": session.name,
                "c": session.csrf,
                "o": session.org_slug,
                "t": session.token_id,
            }
        )
        self._set(response, self.name, value, SESSION_MAX_AGE_S)
        response.delete_cookie(self.pre_name, path="/", secure=self.secure, httponly=True)

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="strict"
        )

    def sign_in_token(self, request: Request) -> tuple[str, str | None]:
        """The sign-in form's CSRF token, and a new cookie value when there was none."""
        value = request.cookies.get(self.pre_name)
        if value:
            try:
                token = self._pre.loads(value, max_age=SIGN_IN_MAX_AGE_S)
                if isinstance(token, str):
                    return token, None
            except BadSignature:
                pass
        token = secrets.token_urlsafe(24)
        return token, self._pre.dumps(token)

    def set_sign_in(self, response: Response, value: str) -> None:
        self._set(response, self.pre_name, value, SIGN_IN_MAX_AGE_S)

    def sign_in_matches(self, request: Request, submitted: str) -> bool:
        value = request.cookies.get(self.pre_name)
        if not value:
            return False
        try:
            token = self._pre.loads(value, max_age=SIGN_IN_MAX_AGE_S)
        except BadSignature:
            return False
        return isinstance(token, str) and hmac.compare_digest(token, submitted)

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(session: Session, submitted: object) -> bool:
    return isinstance(submitted, str) and hmac.compare_digest(session.csrf, submitted)


class SignInFailures(RecentFailures):
    """Failed sign-ins per client address in the last minute (bounded memory)."""

    def __init__(self, limit: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limit, clock)
