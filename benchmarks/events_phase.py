"""The events phase of `just bench`: accept throughput with an endpoint
subscribed, and webhook events delivered per second to a local receiver.

A tenant of its own gets one endpoint for ``message.received`` on a small HTTP
server in this process that answers 200 to every POST and counts them (it
verifies nothing: no signature check, no parsing). Then:

  accept    ``ingest serve`` takes ``count`` small orders over ``connections``
            LMTP connections, closed loop; the accept path writes each event
            and its delivery in the same transaction (the outbox is always on)
  deliver   ``ingest worker`` starts (on a queue of its own, so it extracts
            nothing and only dispatches); events/s from its start and between
            the first and the last POST the receiver saw
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import trio

from benchmarks.loadgen import Workload, run_load
from benchmarks.messages import templates
from benchmarks.procs import start_ours, start_worker
from ingest_core.bootstrap import open_app

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.settings import Settings

TENANT = "events-bench"
RECIPIENT = f"orders+{TENANT}@orders.localhost"


class Receiver:
    """A loopback HTTP server that answers 200 and counts the POSTs."""

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.saw()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def saw(self) -> None:
        now = time.monotonic()
        with self._lock:
            self.count += 1
            self.first = now if self.first is None else self.first
            self.last = now

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_phase(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    *,
    count: int,
    connections: int,
    workers: int,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    env = {**env, "INGEST_WEBHOOK_ALLOW_PRIVATE": "true"}
    built = templates(1, {"small"})
    with Receiver() as receiver:
        with open_app(replace(settings, webhook_allow_private=True)) as app:
            app.admin.add(TENANT, "Events benchmark tenant")
            app.endpoints().add(TENANT, receiver.url, ["message.received"])
        server = start_ours(env, logs, "events")
        try:
            workload = Workload(
                target=server.address, recipient=RECIPIENT, connections=connections,
                count=count, mix={"small": 1.0},
            )  # fmt: skip
            accepted = trio.run(run_load, workload, built)
        finally:
            server.stop()
        accept: dict[str, Any] = accepted.summary()
        expected = len(accepted.accepted)
        print(f"  events accept: {accept['messages_per_s']} msg/s", file=sys.stderr)
        worker_env = {**env, "INGEST_QUEUE_URL": f"{env['INGEST_QUEUE_URL']}-dispatch"}
        started = time.monotonic()
        worker = start_worker(worker_env, logs, workers)
        try:
            deadline = started + timeout_s
            while receiver.count < expected and time.monotonic() < deadline:
                if not worker.alive():
                    break
                time.sleep(0.05)
        finally:
            worker.stop()
        first, last, delivered = receiver.first, receiver.last, receiver.count
    span = (last - first) if first is not None and last is not None else 0.0
    total = (last - started) if last is not None else 0.0
    print(f"  events delivered: {delivered} of {expected}", file=sys.stderr)
    return {
        "messages": count,
        "connections": connections,
        "accept": {
            "accepted": accept["accepted"],
            "messages_per_s": accept["messages_per_s"],
            "accept_latency": accept["accept_latency"],
            "errors": accept["errors"],
            "non_250": accept["non_250"],
        },
        "expected": expected,
        "delivered": delivered,
        "first_delivery_s": round(first - started, 2) if first is not None else None,
        "deliver_span_s": round(span, 2),
        "events_per_s": round(delivered / span, 1) if span > 0 else None,
        "events_per_s_from_start": round(delivered / total, 1) if total > 0 else None,
    }


def markdown(result: dict[str, Any]) -> str:
    """A small table of the events phase."""
    accept = result["accept"]
    return "\n".join(
        [
            f"| events ({result['messages']} messages) | value |",
            "|---|---:|",
            f"| accept msg/s, endpoint subscribed ({result['connections']} conns)"
            f" | {accept['messages_per_s']} |",
            f"| accept latency p95 (ms) | {accept['accept_latency']['p95_ms']} |",
            f"| events delivered / expected | {result['delivered']} / {result['expected']} |",
            f"| delivered events/s (first → last POST) | {result['events_per_s']} |",
            "| delivered events/s (worker start → last POST)"
            f" | {result['events_per_s_from_start']} |",
            f"| worker start → first POST (s) | {result['first_delivery_s']} |",
        ]
    )
