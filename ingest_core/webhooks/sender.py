"""One HTTP POST to a checked address (http.client: no proxies from the
environment, no redirects followed, no second DNS lookup). TLS verifies the
certificate against the URL's host name."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ingest_core.webhooks.addresses import Target

RESPONSE_CAP_BYTES = 64 * 1024  # what we read of a response body
USER_AGENT = "order-ingest-webhooks/1"


@dataclass(frozen=True, slots=True)
class Response:
    """What one attempt got: ``status`` None when there was no HTTP answer."""

    status: int | None
    duration_s: float
    error: str | None = None
    retry_after: str | None = None


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(
    target: Target,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout_s: float,
    context: ssl.SSLContext | None = None,
) -> Response:
    """POST ``body`` as JSON; every wait is bounded by ``timeout_s`` and the whole
    exchange by about twice that (the body is read in chunks up to a cap)."""
    started = time.monotonic()
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPS(target, timeout_s, context or ssl.create_default_context())
    else:
        connection = _PinnedHTTP(target, timeout_s)
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                **headers,
            },
        )
        answer = connection.getresponse()
        deadline = started + 2 * timeout_s
        read = 0
        while read < RESPONSE_CAP_BYTES and time.monotonic() < deadline:
            chunk = answer.read(min(8192, RESPONSE_CAP_BYTES - read))
            if not chunk:
                break
            read += len(chunk)
        return Response(
            answer.status,
            time.monotonic() - started,
            retry_after=answer.getheader("retry-after"),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, time.monotonic() - started, error=_describe(exc))
    finally:
        connection.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return f"{type(exc).__name__}: {exc}"[:300]
