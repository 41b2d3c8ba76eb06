"""Server-tier fixtures: the trio LMTP server on real sockets over the in-memory core
(``start_server``), and the same beside the HTTP endpoint with fake readiness and
backlog probes (``start_observed``)."""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.memory import (
    MemoryBlobStore,
    MemoryJobQueue,
    MemoryMessageRepository,
    MemoryTenantDirectory,
)
from ingest_core.errors import StoreUnavailable
from ingest_core.model import TenantStatus
from ingest_core.service import AcceptConfig, InboundService
from lmtpd.http import HttpConfig, HttpServer
from lmtpd.metrics import ServeMetrics
from lmtpd.server import LmtpServer, ServerConfig

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    import trio

    from ingest_core.spool import Spool

DOMAIN = "orders.example.com"


class SelectiveStore(MemoryBlobStore):
    """Fails puts for chosen tenants only, to give recipients different outcomes."""

    def __init__(self) -> None:
        super().__init__()
        self.failing_orgs: set[uuid.UUID] = set()

    def put(self, key: str, spool: Spool) -> None:
        if any(str(org) in key for org in self.failing_orgs):
            raise StoreUnavailable("failing for this tenant (test)")
        super().put(key, spool)


@dataclass
class MemoryCore:
    service: InboundService
    tenants: MemoryTenantDirectory
    store: MemoryBlobStore
    repo: MemoryMessageRepository
    queue: MemoryJobQueue


def memory_core(store: MemoryBlobStore | None = None) -> MemoryCore:
    """The in-memory core with tenants acme, globex (active) and gone (disabled)."""
    tenants = MemoryTenantDirectory()
    tenants.add("acme")
    tenants.add("globex")
    tenants.add("gone", TenantStatus.DISABLED)
    store = store if store is not None else MemoryBlobStore()
    repo, queue = MemoryMessageRepository(), MemoryJobQueue()
    service = InboundService(
        config=AcceptConfig(domains=(DOMAIN,), mailbox="orders"),
        tenants=tenants,
        store=store,
        repository=repo,
        queue=queue,
    )
    return MemoryCore(service, tenants, store, repo, queue)


@dataclass
class Harness:
    server: LmtpServer
    address: str
    tenants: MemoryTenantDirectory
    store: SelectiveStore
    repo: MemoryMessageRepository
    queue: MemoryJobQueue

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        return host, int(port)


@pytest.fixture
def start_server(nursery: trio.Nursery):
    """``await start_server(listen=..., **config_overrides) -> Harness``."""

    async def start(listen: str = "127.0.0.1:0", **overrides: object) -> Harness:
        store = SelectiveStore()
        core = memory_core(store)
        config = replace(ServerConfig(hostname="lmtp.test"), **overrides)  # type: ignore[arg-type]
        server = LmtpServer(core.service, config)
        address = await nursery.start(server.serve, listen)
        return Harness(server, address, core.tenants, store, core.repo, core.queue)

    return start


# ------------------------------------------- the HTTP endpoint beside the server

ACME = f"orders+acme@{DOMAIN}"
BODY = b"Message-ID: <po-1@buyer.example>\r\nSubject: PO\r\n\r\nOne crate.\r\n"


@dataclass
class FakeProbes:
    """Readiness checks and backlog values a test can break."""

    down: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    depth: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    verdicts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    automated: dict[tuple[str, str], int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)
    webhook_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    webhook_ages: dict[str, float] = field(default_factory=dict)
    webhook_latency: list[tuple[float, int]] = field(default_factory=list)
    webhook_latency_sum: float = 0.0
    count_reads: int = 0

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        return {name: self._check(name) for name in ("postgres", "object_store", "queue")}

    def _check(self, name: str) -> Callable[[], object]:
        def check() -> None:
            if name in self.hang:
                time.sleep(1.0)
            if name in self.down:
                raise StoreUnavailable(f"secret detail of {name}")

        return check

    def queue_depth(self) -> int:
        return self.depth

    def message_counts(self) -> dict[tuple[str, str], int]:
        self.count_reads += 1
        return dict(self.counts)

    def verdict_counts(self) -> dict[tuple[str, str, str], int]:
        return dict(self.verdicts)

    def automated_counts(self) -> dict[tuple[str, str], int]:
        return dict(self.automated)

    def stored_bytes(self) -> dict[str, int]:
        return dict(self.stored)

    def last_purge(self) -> dict[str, int]:
        return dict(self.purged)

    def webhook_attempts(self) -> dict[tuple[str, str], int]:
        return dict(self.webhook_counts)

    def webhook_oldest_pending(self) -> dict[str, float]:
        return dict(self.webhook_ages)

    def webhook_attempt_latency(self) -> tuple[list[tuple[float, int]], float]:
        return list(self.webhook_latency), self.webhook_latency_sum


@dataclass
class Observed:
    lmtp: LmtpServer
    http: HttpServer
    core: MemoryCore
    probes: FakeProbes

    @property
    def lmtp_host_port(self) -> tuple[str, int]:
        host, _, port = (self.lmtp.address or "").rpartition(":")
        return host, int(port)

    @property
    def address(self) -> str:
        return self.http.address or ""


@pytest.fixture
def start_observed(nursery: trio.Nursery):
    async def start(http_config: HttpConfig | None = None, **lmtp: object) -> Observed:
        probes = FakeProbes()
        metrics = ServeMetrics(probes)
        core = memory_core(SelectiveStore())
        config = replace(ServerConfig(hostname="lmtp.test"), **lmtp)  # type: ignore[arg-type]
        server = LmtpServer(core.service, config, metrics)
        await nursery.start(server.serve, "127.0.0.1:0")
        endpoint = HttpServer(metrics, probes, http_config)
        await nursery.start(endpoint.serve, "127.0.0.1:0")
        return Observed(server, endpoint, core, probes)

    return start


def lmtp_send(address: tuple[str, int], recipients: list[str], data: bytes = BODY) -> list[int]:
    """RCPT codes of refused recipients and the DATA replies of the accepted ones."""
    with smtplib.LMTP(*address, timeout=30) as client:
        client.ehlo()
        client.mail("buyer@example.org")
        codes = [client.rcpt(r)[0] for r in recipients]
        accepted = codes.count(250)
        refused = [c for c in codes if c != 250]
        if not accepted:
            return refused
        assert client.docmd("DATA")[0] == 354
        client.send(data + b".\r\n")
        return refused + [client.getreply()[0] for _ in range(accepted)]
