"""The supervisor's ``/metrics``: every serving process's metrics merged into one
exposition, beside the scrape-time values the supervisor reads once.

Each serving process serves its own :class:`~lmtpd.metrics.ServeMetrics` on a
private unix socket. At each scrape the supervisor asks all of them (in parallel,
each within ``scrape_timeout_s``) and sums the samples of the same name and label
set: counters and histograms (buckets, sum, count) and gauges alike (open
connections add up). ``*_created`` series are left out: a sum of creation times
means nothing.

Counters stay monotonic across a restart: when a process is replaced, its last
scraped counters and histograms are kept as a base that the new process's values
add to (what it counted after its last scrape is lost, not subtracted). A process
that does not answer one scrape contributes its last counters again, but no
gauges.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from lmtpd.backlog import backlog_collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from lmtpd.backlog import BacklogSource

log = logging.getLogger("ingest.metrics")

# (family name, sample name, sorted label pairs)
SampleKey = tuple[str, str, tuple[tuple[str, str], ...]]
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})
MAX_REPLY = 8 << 20


class _Scrape:
    """One process's samples from one scrape, and its families' help and type."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.kinds: dict[str, tuple[str, str]] = {}
        self.samples: dict[SampleKey, float] = {}
        for family in families:
            if family.name.endswith("_created"):
                continue
            self.kinds[family.name] = (family.documentation, family.type)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = tuple(sorted(sample.labels.items()))
                self.samples[(family.name, sample.name, labels)] = sample.value

    def cumulative(self) -> Iterator[tuple[SampleKey, float]]:
        for key, value in self.samples.items():
            if self.kinds[key[0]][1] in _CUMULATIVE:
                yield key, value


class MergedMetrics(Collector):
    """A :class:`~lmtpd.http.MetricsSource` for the supervisor's HTTP endpoint."""

    def __init__(
        self,
        children: Sequence[Path],
        backlog: BacklogSource | None = None,
        *,
        processes_up: Callable[[], int] = lambda: 0,
        scrape_timeout_s: float = 2.0,
    ) -> None:
        self._children = list(children)
        self._processes_up = processes_up
        self._timeout_s = scrape_timeout_s
        self._last: list[_Scrape | None] = [None] * len(self._children)
        self._fresh: list[bool] = [False] * len(self._children)
        self._retired: dict[SampleKey, float] = {}
        self._retired_kinds: dict[str, tuple[str, str]] = {}
        self.restarts = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self._backlog = backlog_collector(backlog) if backlog is not None else None
        if self._backlog is not None:
            self.registry.register(self._backlog)
        self.registry.register(self)

    def retire(self, index: int) -> None:
        """Process ``index`` is being replaced: keep what it counted as a base."""
        last = self._last[index]
        self._last[index], self._fresh[index] = None, False
        self.restarts += 1
        if last is None:
            return
        for key, value in last.cumulative():
            self._retired[key] = self._retired.get(key, 0.0) + value
            self._retired_kinds.setdefault(key[0], last.kinds[key[0]])

    async def render(self, limiter: trio.CapacityLimiter) -> bytes:
        async with trio.open_nursery() as nursery:
            if self._backlog is not None:
                nursery.start_soon(self._backlog.refresh, limiter)
            for index in range(len(self._children)):
                nursery.start_soon(self._scrape, index)
        return generate_latest(self.registry)

    async def _scrape(self, index: int) -> None:
        self._fresh[index] = False
        body: bytes | None = None
        with trio.move_on_after(self._timeout_s):
            body = await scrape_unix(self._children[index])
        if body is None:
            log.warning("metrics of a serving process unavailable", extra={"child": index})
            return
        try:
            families = list(text_string_to_metric_families(body.decode("utf-8")))
        except ValueError:
            log.warning("metrics of a serving process unreadable", extra={"child": index})
            return
        self._last[index], self._fresh[index] = _Scrape(families), True

    def collect(self) -> Iterator[Metric]:
        kinds = dict(self._retired_kinds)
        totals = dict(self._retired)
        for scrape, fresh in zip(self._last, self._fresh, strict=True):
            if scrape is None:
                continue
            for name, kind in scrape.kinds.items():
                kinds.setdefault(name, kind)
            for key, value in scrape.samples.items():
                if fresh or scrape.kinds[key[0]][1] in _CUMULATIVE:
                    totals[key] = totals.get(key, 0.0) + value
        families = {name: Metric(name, doc, kind) for name, (doc, kind) in kinds.items()}
        for (name, sample, labels), value in totals.items():  # in the processes' order
            families[name].add_sample(sample, dict(labels), value)
        yield from families.values()
        up = GaugeMetricFamily(
            "ingest_serve_processes_up", "Serving processes up and listening (of --processes)."
        )
        up.add_metric([], self._processes_up())
        yield up
        restarts = CounterMetricFamily(
            "ingest_serve_process_restarts",
            "Serving processes the supervisor restarted after they exited unexpectedly.",
        )
        restarts.add_metric([], self.restarts)
        yield restarts


async def scrape_unix(path: Path) -> bytes | None:
    """``GET /metrics`` over the unix socket at ``path``: the body of a 200, else None."""
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return None
    reply = bytearray()
    try:
        async with stream:
            await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while len(reply) < MAX_REPLY and (chunk := await stream.receive_some(1 << 16)):
                reply += chunk
    except (OSError, trio.BrokenResourceError):
        return None
    head, _, body = bytes(reply).partition(b"\r\n\r\n")
    return body if head.startswith(b"HTTP/1.1 200 ") else None
