"""The supervisor's merge of its serving processes' metrics, against real HTTP
endpoints on unix sockets (each with its own ServeMetrics, as a child serves them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from lmtpd.cli.merged_metrics import MergedMetrics
from lmtpd.http import HttpServer
from lmtpd.metrics import ServeMetrics
from tests.server.conftest import FakeProbes
from tests.server.http_client import sample

if TYPE_CHECKING:
    from pathlib import Path

ACCEPTED = {"outcome": "accepted", "reason": "ok", "tenant": "acme"}


def _child_metrics(accepted: int, open_connections: int) -> ServeMetrics:
    metrics = ServeMetrics()
    for _ in range(accepted):
        metrics.recipients.labels("accepted", "ok", "acme").inc()
        metrics.accept_duration.observe(0.02)
    metrics.connections_open.set(open_connections)
    return metrics


async def _serve(nursery: trio.Nursery, metrics: ServeMetrics, path: Path) -> HttpServer:
    http = HttpServer(metrics)
    await nursery.start(http.serve, f"unix:{path}")
    return http


async def _render(merged: MergedMetrics) -> str:
    return (await merged.render(trio.CapacityLimiter(2))).decode()


async def test_counters_histograms_and_gauges_are_summed(tmp_path: Path) -> None:
    paths = [tmp_path / "m0.sock", tmp_path / "m1.sock"]
    async with trio.open_nursery() as nursery:
        await _serve(nursery, _child_metrics(3, 1), paths[0])
        await _serve(nursery, _child_metrics(4, 2), paths[1])
        merged = MergedMetrics(paths, FakeProbes(), processes_up=lambda: 2)
        text = await _render(merged)
        nursery.cancel_scope.cancel()
    assert sample(text, "ingest_lmtp_recipients_total", **ACCEPTED) == 7
    assert sample(text, "ingest_accept_duration_seconds_count") == 7
    assert sample(text, "ingest_accept_duration_seconds_bucket", le="0.025") == 7
    assert sample(text, "ingest_lmtp_connections_open") == 3
    assert sample(text, "ingest_serve_processes_up") == 2
    assert "_created" not in text
    # the supervisor's own scrape-time values, once
    assert text.count("\ningest_queue_depth ") == 1


async def test_a_replaced_process_keeps_its_counts_but_not_its_gauges(tmp_path: Path) -> None:
    paths = [tmp_path / "m0.sock", tmp_path / "m1.sock"]
    merged = MergedMetrics(paths)
    async with trio.open_nursery() as nursery:
        await _serve(nursery, _child_metrics(5, 1), paths[1])
        async with trio.open_nursery() as first:
            await _serve(first, _child_metrics(3, 4), paths[0])
            await _render(merged)
            first.cancel_scope.cancel()
        merged.retire(0)  # child 0 died; the next one starts from zero
        replacement = _child_metrics(1, 0)
        await _serve(nursery, replacement, paths[0])
        text = await _render(merged)
        nursery.cancel_scope.cancel()
    assert sample(text, "ingest_lmtp_recipients_total", **ACCEPTED) == 3 + 5 + 1
    assert sample(text, "ingest_lmtp_connections_open") == 1
    assert sample(text, "ingest_serve_process_restarts_total") == 1


async def test_a_silent_process_adds_its_last_counts_only(tmp_path: Path) -> None:
    paths = [tmp_path / "m0.sock", tmp_path / "m1.sock"]
    merged = MergedMetrics(paths, scrape_timeout_s=1.0)
    async with trio.open_nursery() as nursery:
        await _serve(nursery, _child_metrics(2, 1), paths[1])
        async with trio.open_nursery() as first:
            await _serve(first, _child_metrics(3, 4), paths[0])
            await _render(merged)
            first.cancel_scope.cancel()
        text = await _render(merged)  # child 0 does not answer
        nursery.cancel_scope.cancel()
    assert sample(text, "ingest_lmtp_recipients_total", **ACCEPTED) == 5
    assert sample(text, "ingest_lmtp_connections_open") == 1
