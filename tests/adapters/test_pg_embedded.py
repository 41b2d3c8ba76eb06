"""The embedded server shared by several processes, and database_url_for."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import psycopg
import pytest

from ingest_core.adapters.postgres import embedded as pg_embedded
from ingest_core.adapters.postgres.embedded import (
    EmbeddedPostgres,
    database_url_for,
    release_embedded,
)
from ingest_core.errors import ConfigError
from ingest_core.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)

_JOINER = """
import sys
from pathlib import Path
from ingest_core.adapters.postgres.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
print(server.start(), flush=True)
sys.stdin.readline()
"""


class OtherProcess:
    """A second process that starts or joins the server and holds it until told."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _JOINER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("postgresql://"), "the other process could not start"

    def exit_normally(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def die_without_cleanup(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def postmaster_running(folder: Path) -> bool:
    return (folder / "postmaster.pid").exists()


def test_server_outlives_a_process_that_leaves_and_one_that_dies(make_private_dir) -> None:
    with make_private_dir("pg-share") as base:
        folder = base / "pg"
        ours = EmbeddedPostgres(folder)
        url = ours.start()
        try:
            leaver = OtherProcess(folder)
            assert leaver.url == url
            leaver.exit_normally()
            assert answers(url), "a joiner leaving stopped a server still in use"

            crasher = OtherProcess(folder)
            crasher.die_without_cleanup()
            assert answers(url)
        finally:
            ours.stop()
        # The dead process's handle was forgotten, so the last live one stopped it.
        assert not postmaster_running(folder)
        assert not answers(url)


def test_server_started_by_another_process_is_joined(make_private_dir) -> None:
    with make_private_dir("pg-join") as base:
        folder = base / "pg"
        first = OtherProcess(folder)
        ours = EmbeddedPostgres(folder)
        try:
            assert ours.start() == first.url
            first.exit_normally()
            assert answers(ours.url)
        finally:
            ours.stop()
        assert not postmaster_running(folder)


def test_database_url_for_prefers_the_configured_url(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url="postgresql://db.internal/ingest")
    assert database_url_for(settings) == "postgresql://db.internal/ingest"
    assert not (data_dir / "pg").exists()


def test_database_url_for_refuses_embedded_in_production(data_dir: Path) -> None:
    with pytest.raises(ConfigError):
        database_url_for(Settings(data_dir=data_dir, env="production"))


def test_database_url_for_starts_one_embedded_server(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir / "var")
    try:
        url = database_url_for(settings)
        assert database_url_for(settings) == url
        assert answers(url)
        assert postmaster_running(settings.pg_dir)
    finally:
        release_embedded()
    assert pg_embedded._started == {}
    assert not postmaster_running(settings.pg_dir)


def test_stop_without_start_is_harmless(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    server.stop()
    assert not server.running
    with pytest.raises(RuntimeError):
        _ = server.url
