"""Fixtures of the hostile-input tests (normal suite, fast).

``memory_core()``      the in-memory core with tenants acme, globex (active) and
                       gone (disabled)
``serve_memory``       ``await serve_memory(**config) -> MemoryServer``: the real trio
                       LMTP server on 127.0.0.1 over the in-memory core
``pg_app``             the whole app on the test Postgres (real tenant directory,
                       local object store, SQLite queue) with acme, globex, gone
                       and kiwi
``serve_app``          ``await serve_app(app) -> "host:port"``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest

from ingest_core.bootstrap import App, open_app
from ingest_core.model import TenantStatus
from ingest_core.settings import Settings
from lmtpd.cli.serve import server_config
from lmtpd.server import LmtpServer, ServerConfig
from tests.server.conftest import DOMAIN, MemoryCore, memory_core

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import trio

ACME = f"orders+acme@{DOMAIN}"
GLOBEX = f"orders+globex@{DOMAIN}"


@dataclass
class MemoryServer:
    server: LmtpServer
    address: str
    core: MemoryCore


ServeMemory = Callable[..., Awaitable[MemoryServer]]
ServeApp = Callable[[App], Awaitable[str]]


@pytest.fixture
def serve_memory(nursery: trio.Nursery) -> ServeMemory:
    async def start(**overrides: object) -> MemoryServer:
        core = memory_core()
        config = replace(ServerConfig(hostname="lmtp.test"), **overrides)  # type: ignore[arg-type]
        server = LmtpServer(core.service, config)
        address = await nursery.start(server.serve, "127.0.0.1:0")
        return MemoryServer(server, address, core)

    return start


@pytest.fixture
def pg_app(data_dir: Path, pg_url: str) -> Iterator[App]:
    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
    with open_app(settings.with_(log_format="console")) as app:
        for slug in ("acme", "globex", "gone", "kiwi"):
            app.admin.add(slug, slug.title())
        app.admin.set_status("gone", TenantStatus.DISABLED)
        yield app


@pytest.fixture
def serve_app(nursery: trio.Nursery) -> ServeApp:
    async def start(app: App) -> str:
        server = LmtpServer(app.service, server_config(app.settings))
        address: str = await nursery.start(server.serve, "127.0.0.1:0")
        return address

    return start
