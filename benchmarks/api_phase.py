"""The tenant API phase of `just bench`: metadata reads per second and attachment
download MB/s from `ingest serve` with its API on.

``count`` PROCESSED messages of a tenant of their own are inserted in bulk
(benchmarks/purge_phase.seed, received an hour ago, so no purge is due), every
fourth with an attachment of ``attachment_kb``; a tenant token is issued; then
``ingest serve`` starts with the API on a free loopback port and, for
``duration`` seconds each, ``clients`` threads (one keep-alive HTTP connection
each) run a closed loop of

  detail    ``GET /v1/messages/{id}`` of random messages
  list      ``GET /v1/messages?limit=50`` pages, following ``next_cursor``
  download  ``GET /v1/messages/{id}/attachments/{attachment_id}`` whole bodies
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.procs import BenchError, ServerProcess, free_port
from benchmarks.purge_phase import seed
from benchmarks.stats import summarise
from ingest_core.bootstrap import open_app

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable
    from pathlib import Path

    from ingest_core.settings import Settings

TENANT = "api-bench"
PAGE = 50
READY_LIMIT_S = 30.0


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)


def start_api(env: dict[str, str], logs: Path) -> tuple[ServerProcess, str]:
    """``ingest serve --no-milter`` with the API on a free port; its base URL."""
    api_port, lmtp_port = free_port(), free_port()
    server = ServerProcess(
        "api",
        [sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter"],
        {
            "INGEST_HTTP_LISTEN": "off",
            **env,
            "INGEST_API_LISTEN": f"127.0.0.1:{api_port}",
            "INGEST_LMTP_LISTEN": f"127.0.0.1:{lmtp_port}",
        },
        logs / "api-serve.log",
        lmtp_port,
    )
    base = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + READY_LIMIT_S
    while True:
        try:
            httpx.get(f"{base}/v1/messages", timeout=2)
            return server, base
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise BenchError(f"the tenant API did not answer: {exc}") from exc
            time.sleep(0.1)


def _closed_loop(
    base: str,
    token: str,
    clients: int,
    duration: float,
    request: Callable[[httpx.Client, random.Random, dict[str, Any]], httpx.Response],
) -> dict[str, Any]:
    tallies = [Tally() for _ in range(clients)]
    stop = time.monotonic() + duration

    def client(index: int) -> None:
        tally = tallies[index]
        rng = random.Random(index)
        state: dict[str, Any] = {}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while time.monotonic() < stop:
                began = time.perf_counter()
                try:
                    response = request(http, rng, state)
                except httpx.HTTPError:
                    tally.errors += 1
                    continue
                tally.latencies.append(time.perf_counter() - began)
                tally.requests += 1
                if response.status_code != 200:
                    tally.errors += 1
                tally.bytes += len(response.content)

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    requests = sum(t.requests for t in tallies)
    size = sum(t.bytes for t in tallies)
    return {
        "requests": requests,
        "errors": sum(t.errors for t in tallies),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(requests / elapsed, 1),
        "mb_per_s": round(size / 1e6 / elapsed, 1),
        "latency": summarise([x for t in tallies for x in t.latencies]),
    }


def run_phase(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    *,
    count: int,
    clients: int,
    duration: float,
    attachment_kb: int,
) -> dict[str, Any]:
    with open_app(settings) as app:
        app.admin.add(TENANT, "API benchmark tenant")
        token = app.tokens.issue(TENANT, "bench").token
    _, ids = seed(
        settings.database_url,
        settings.objects_dir,
        count,
        tenant=TENANT,
        age=timedelta(hours=1),
        attachment_bytes=attachment_kb * 1024,
    )
    messages = [m for m, _ in ids]
    attachments: list[tuple[uuid.UUID, uuid.UUID]] = [(m, a) for m, a in ids if a is not None]

    def detail(http: httpx.Client, rng: random.Random, _: dict[str, Any]) -> httpx.Response:
        return http.get(f"/v1/messages/{rng.choice(messages)}")

    def listing(http: httpx.Client, _: random.Random, state: dict[str, Any]) -> httpx.Response:
        params: dict[str, Any] = {"limit": PAGE}
        if state.get("cursor"):
            params["cursor"] = state["cursor"]
        response = http.get("/v1/messages", params=params)
        state["cursor"] = response.json().get("next_cursor") if response.is_success else None
        return response

    def download(http: httpx.Client, rng: random.Random, _: dict[str, Any]) -> httpx.Response:
        message, attachment = rng.choice(attachments)
        return http.get(f"/v1/messages/{message}/attachments/{attachment}")

    server, base = start_api(env, logs)
    out: dict[str, Any] = {
        "messages": count,
        "clients": clients,
        "duration_s": duration,
        "attachment_kb": attachment_kb,
    }
    try:
        for name, request in (("detail", detail), ("list", listing), ("download", download)):
            _closed_loop(base, token, clients, min(duration, 0.5), request)  # warm-up
            out[name] = _closed_loop(base, token, clients, duration, request)
            print(f"  api {name}: {out[name]['requests_per_s']} req/s", file=sys.stderr)
    finally:
        server.stop()
    return out


def markdown(result: dict[str, Any]) -> str:
    """A small table of the API phase."""
    lines = [
        f"| tenant API ({result['clients']} clients) | requests/s | MB/s | p50 ms | p95 ms"
        " | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "detail": "GET /v1/messages/{id}",
        "list": f"GET /v1/messages (page of {PAGE})",
        "download": f"attachment download ({result['attachment_kb']} KiB)",
    }
    for name, label in labels.items():
        row = result[name]
        latency = row["latency"]
        lines.append(
            f"| {label} | {row['requests_per_s']} | {row['mb_per_s']} | {latency['p50_ms']}"
            f" | {latency['p95_ms']} | {row['errors']} |"
        )
    return "\n".join(lines)
