"""What a bench run stands on: a private embedded Postgres with the bench
tenant, the settings and environment of the processes it starts (each on a
queue of its own), and a loopback DNS stub for all of them."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import make_conninfo

from ingest_core.adapters.postgres.embedded import EmbeddedPostgres
from ingest_core.adapters.postgres.migrate import migrate
from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from tests.dnsstub import running_stub

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TENANT = "bench"


@contextlib.contextmanager
def database(folder: Path) -> Iterator[str]:
    """A migrated database on a private embedded Postgres, with the bench tenant."""
    server = EmbeddedPostgres(folder / "pg")
    server.start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = make_conninfo(server.url, dbname="bench")
        migrate(url)
        settings = Settings(data_dir=folder, database_url=url, queue_url=queue_url(folder, "admin"))
        with open_app(settings) as app:
            app.admin.add(TENANT, "Benchmark tenant")
        yield url
    finally:
        server.stop()


def settings_for(folder: Path, url: str, queue: str) -> Settings:
    return Settings(data_dir=folder, database_url=url, queue_url=queue_url(folder, queue))


def queue_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / f'queue-{name}.db'}"


def child_env(folder: Path, url: str, queue: str) -> dict[str, str]:
    """The environment of a server or worker the harness starts, on a queue of its own."""
    return {
        "INGEST_DATA_DIR": str(folder),
        "INGEST_DATABASE_URL": url,
        "INGEST_DOMAINS": "orders.localhost",
        "INGEST_LOG_FORMAT": "json",
        "INGEST_SHUTDOWN_GRACE_S": "5",
        "INGEST_QUEUE_URL": queue_url(folder, queue),
    }


@contextlib.contextmanager
def loopback_dns() -> Iterator[None]:
    """Every process the bench starts asks a loopback DNS stub with an empty zone
    (sender checks find no records), never the machine's resolver; a caller's own
    stub (the test suite's) is kept."""
    if os.environ.get("INGEST_DNS_SERVERS"):
        yield
        return
    with running_stub({}) as stub:
        os.environ["INGEST_DNS_SERVERS"] = stub.nameserver
        try:
            yield
        finally:
            del os.environ["INGEST_DNS_SERVERS"]
