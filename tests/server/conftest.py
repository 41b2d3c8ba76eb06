"""Server-tier fixtures: the trio LMTP server on real sockets over the in-memory core."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from lmtpd.server import LmtpServer, ServerConfig

if TYPE_CHECKING:
    import uuid

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
