"""The private operations endpoint: ``/healthz``, ``/readyz``, ``/metrics``.

A small Starlette app served by hypercorn's trio worker (:mod:`lmtpd.asgi`) on
``INGEST_HTTP_LISTEN``, apart from the tenant API. GET and HEAD only, one request
per connection (``Connection: close``); request heads are capped (431) and a
connection without a complete request is closed after ``read_timeout_s``.
Replies are fixed texts; nothing the client sent is echoed. Blocking checks run
in worker threads on a limiter of their own, so a hanging dependency cannot take
the LMTP server's threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from ingest_core.errors import IngestError, Unavailable
from lmtpd.asgi import CapRequestHead, ServeOptions, serve_asgi
from lmtpd.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from starlette.requests import Request

log = logging.getLogger("ingest.http")

MAX_HEAD = 8192


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
    check_timeout_s: float = 2.0
    worker_threads: int = 8


_HEADERS = {"Cache-Control": "no-store", "Connection": "close"}


def text_response(status: int, text: str, **headers: str) -> Response:
    return Response(
        (text + "\n").encode("ascii"),
        status,
        headers={**_HEADERS, **headers},
        media_type="text/plain; charset=utf-8",
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return text_response(405, "method not allowed", Allow="GET, HEAD")
    if status == 404:
        return text_response(404, "not found")
    if status == 400:
        return text_response(400, "bad request")
    return text_response(500, "internal error")


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("http request failed", exc_info=exc)
    return text_response(500, "internal error")


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
        self._checks_running: set[str] = set()
        self._checks_lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            middleware=[Middleware(CapRequestHead, max_bytes=MAX_HEAD)],
        )

    async def serve(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Raises :class:`OSError` when ``listen`` cannot be bound."""
        options = ServeOptions(idle_timeout_s=self.config.read_timeout_s, max_head_bytes=MAX_HEAD)

        async def started(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            await serve_asgi(self.app, listen, options, task_status=task_status)

        async with trio.open_nursery() as nursery:
            self.address = await nursery.start(started)
            log.info("http listening", extra={"listen": self.address})
            task_status.started(self.address)

    async def _healthz(self, request: Request) -> Response:
        return text_response(200, "ok")

    async def _metrics(self, request: Request) -> Response:
        body = await self.metrics.render(self.limiter)
        return Response(body, 200, headers=_HEADERS, media_type=CONTENT_TYPE)

    async def _readyz(self, request: Request) -> Response:
        ready, results = await self.ready()
        body = json.dumps(results, sort_keys=True).encode("ascii") + b"\n"
        return Response(
            body, 200 if ready else 503, headers=_HEADERS, media_type="application/json"
        )

    async def ready(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """Ready when every check passed within its deadline; per check
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
        return all(result["ok"] for result in results.values()), results

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
