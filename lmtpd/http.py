"""A minimal HTTP/1.1 endpoint for operations: ``/healthz``, ``/readyz``, ``/metrics``.

No framework: GET and HEAD only, one request per connection (``Connection:
close``), the request head capped at ``MAX_HEAD`` bytes and read within
``read_timeout_s``. Replies are fixed texts; nothing the client sent is echoed.
Blocking checks run in worker threads on a limiter of their own, so a hanging
dependency cannot take the LMTP server's threads.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio

from ingest_core.errors import IngestError, Unavailable
from lmtpd.listeners import bound_address, open_listeners
from lmtpd.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger("ingest.http")

MAX_HEAD = 8192
_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (/[\x21-\x7e]*) HTTP/1\.[01]")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Readiness(Protocol):
    """What ``/readyz`` checks (``ingest_core.bootstrap.App``)."""

    def readiness_checks(self) -> Mapping[str, Callable[[], object]]:
        """Named blocking calls that raise unless their dependency is reachable."""
        ...


class MetricsSource(Protocol):
    """What ``/metrics`` serves: a process's :class:`~lmtpd.metrics.ServeMetrics`,
    or the supervisor's merge of its serving processes' metrics."""

    async def render(self, limiter: trio.CapacityLimiter) -> bytes:
        """The Prometheus text exposition; blocking reads go through ``limiter``."""
        ...


@dataclass(frozen=True, slots=True)
class HttpConfig:
    read_timeout_s: float = 5.0
    write_timeout_s: float = 10.0
    check_timeout_s: float = 2.0
    max_connections: int = 64
    worker_threads: int = 8


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    allow: bool = False  # an Allow header (405)

    def encode(self, *, head_only: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS[self.status]}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        if self.allow:
            lines.append("Allow: GET, HEAD")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head if head_only else head + self.body


def _text(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode("ascii"))


BAD_REQUEST = _text(400, "bad request")
NOT_FOUND = _text(404, "not found")
METHOD_NOT_ALLOWED = Response(405, b"method not allowed\n", allow=True)
REQUEST_TIMEOUT = _text(408, "request timeout")
HEAD_TOO_LARGE = _text(431, "request head too large")
INTERNAL_ERROR = _text(500, "internal error")


@dataclass(frozen=True, slots=True)
class Request:
    method: bytes
    path: bytes


def parse_head(head: bytes) -> Request | Response:
    """The request of a complete head (up to and including its blank line), or
    the error response for it."""
    line, _, _ = head.partition(b"\r\n")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return BAD_REQUEST
    method, target = match.groups()
    if method not in (b"GET", b"HEAD"):
        return METHOD_NOT_ALLOWED
    return Request(method, target.partition(b"?")[0])


class HttpServer:
    """Serves the endpoints until cancelled."""

    def __init__(
        self,
        metrics: MetricsSource,
        readiness: Readiness | None = None,
        config: HttpConfig | None = None,
        *,
        shutting_down: Callable[[], bool] = lambda: False,
        lmtp_status: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        """``lmtp_status``: the ``lmtp`` entry of ``/readyz`` (``{"ok": bool, …}``), for a
        supervisor whose serving processes are elsewhere; ``shutting_down`` overrides it."""
        self.metrics = metrics
        self.readiness = readiness
        self.config = config or HttpConfig()
        self.shutting_down = shutting_down
        self.lmtp_status = lmtp_status
        self.limiter = trio.CapacityLimiter(self.config.worker_threads)
        self.address: str | None = None
        self._slots = trio.Semaphore(self.config.max_connections)
        self._checks_running: set[str] = set()
        self._checks_lock = threading.Lock()

    async def serve(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await open_listeners(listen)
        self.address = bound_address(listeners)
        log.info("http listening", extra={"listen": self.address})
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self.address)
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
        finally:
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # out of descriptors: keep serving, retry shortly
                log.error("http accept failed; retrying", extra={"errno": exc.errno})
                await trio.sleep(0.1)
                continue
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                await _close(stream)
                continue
            nursery.start_soon(self.handle, stream)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One request and its response; never raises for client behaviour."""
        try:
            head = await self._read_head(stream)
            request = parse_head(head) if isinstance(head, bytes) else head
            if isinstance(request, Response):
                await self._send(stream, request, head_only=False)
            else:
                try:
                    response = await self.respond(request.path)
                except Exception:
                    log.exception("http request failed")
                    response = INTERNAL_ERROR
                await self._send(stream, response, head_only=request.method == b"HEAD")
            await _linger(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._slots.release()
            await _close(stream)

    async def _read_head(self, stream: trio.abc.Stream) -> bytes | Response:
        buffer = bytearray()
        with trio.move_on_after(self.config.read_timeout_s):
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end >= 0:
                    return bytes(buffer[: end + 4])
                if len(buffer) >= MAX_HEAD:
                    return HEAD_TOO_LARGE
                chunk = await stream.receive_some(MAX_HEAD)
                if not chunk:
                    return BAD_REQUEST
                buffer += chunk
        return REQUEST_TIMEOUT

    async def _send(self, stream: trio.abc.Stream, response: Response, *, head_only: bool) -> None:
        with trio.move_on_after(self.config.write_timeout_s):
            await stream.send_all(response.encode(head_only=head_only))

    async def respond(self, path: bytes) -> Response:
        if path == b"/healthz":
            return _text(200, "ok")
        if path == b"/readyz":
            return await self.ready()
        if path == b"/metrics":
            body = await self.metrics.render(self.limiter)
            return Response(200, body, CONTENT_TYPE)
        return NOT_FOUND

    async def ready(self) -> Response:
        """200 when every check passed within its deadline, else 503; per check
        ``{"ok": bool, "ms": float}`` and a fixed ``error`` word on failure."""
        checks = dict(self.readiness.readiness_checks()) if self.readiness else {}
        results: dict[str, dict[str, object]] = {}
        async with trio.open_nursery() as nursery:
            for name, check in checks.items():
                nursery.start_soon(self._run_check, name, check, results)
        if self.lmtp_status is not None:
            results["lmtp"] = dict(self.lmtp_status())
        if self.shutting_down():
            results["lmtp"] = {"ok": False, "error": "shutting down"}
        ready = all(result["ok"] for result in results.values())
        body = json.dumps(results, sort_keys=True).encode("ascii") + b"\n"
        return Response(200 if ready else 503, body, "application/json")

    async def _run_check(
        self, name: str, check: Callable[[], object], results: dict[str, dict[str, object]]
    ) -> None:
        started = time.perf_counter()
        with self._checks_lock:
            if name in self._checks_running:  # the last one has not come back yet
                results[name] = {"ok": False, "error": "timeout"}
                return
            self._checks_running.add(name)
        error: str | None = "timeout"
        with trio.move_on_after(self.config.check_timeout_s):
            error = await trio.to_thread.run_sync(
                self._check_in_thread, name, check, limiter=self.limiter, abandon_on_cancel=True
            )
        ms = round((time.perf_counter() - started) * 1000, 1)
        results[name] = {"ok": True, "ms": ms} if error is None else {"ok": False, "error": error}
        if error is not None:
            log.warning("readiness check failed", extra={"check": name, "error": error, "ms": ms})

    def _check_in_thread(self, name: str, check: Callable[[], object]) -> str | None:
        """In a worker thread, which may outlive an abandoned wait: it clears its
        own running mark so that at most one call per check is in flight."""
        try:
            check()
        except Unavailable as exc:
            return exc.cause  # a fixed phrase: "connection refused", "timeout" …
        except IngestError:
            return "unavailable"
        except Exception:
            log.exception("readiness check raised", extra={"check": name})
            return "error"
        finally:
            with self._checks_lock:
                self._checks_running.discard(name)
        return None


async def _linger(stream: trio.abc.Stream) -> None:
    """Half-close, then read and drop what the client still sends (briefly): closing
    with unread input would reset the connection and lose the response."""
    with trio.move_on_after(1.0):
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        drained = 0
        while drained < 1 << 16 and (chunk := await stream.receive_some(MAX_HEAD)):
            drained += len(chunk)


async def _close(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(1) as scope:
        scope.shield = True
        await stream.aclose()
