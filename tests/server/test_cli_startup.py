"""`ingest serve` as a process at start and stop: a listener that cannot be bound
is a one-line configuration error (exit 2, no traceback, nothing left serving);
`listening` comes with the addresses, `ready` only once the dependencies answer;
a second SIGTERM still releases the embedded database."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.procs import REPO, free_port, ingest_env, run_ingest, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


def assert_one_line_config_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("configuration error: ")]
    for needle in needles:
        assert needle in line
    assert " — " in line  # what to do


def _listen_env(data_dir: Path, pg_url: str, **taken: str) -> dict[str, str]:
    listen = {
        "INGEST_LMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "INGEST_MILTER_LISTEN": f"127.0.0.1:{free_port()}",
        "INGEST_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
    }
    return ingest_env(data_dir, pg_url, **{**listen, **taken})


@pytest.mark.parametrize(
    "variable", ["INGEST_LMTP_LISTEN", "INGEST_MILTER_LISTEN", "INGEST_HTTP_LISTEN"]
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_listener_in_use_refuses_to_start(
    data_dir: Path, pg_url: str, taken_port: int, variable: str, processes: str
) -> None:
    address = f"127.0.0.1:{taken_port}"
    env = _listen_env(data_dir, pg_url, **{variable: address})
    result = run_ingest(env, "serve", "--processes", processes)
    assert_one_line_config_error(result, variable, address, "in use")


def _serve(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter", *args],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _events(log_path: Path) -> list[dict[str, object]]:
    lines = log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _event(log_path: Path, name: str) -> dict[str, object] | None:
    return next((e for e in _events(log_path) if e.get("event") == name), None)


def test_ready_waits_for_postgres_and_names_the_setup(data_dir: Path, closed_port: int) -> None:
    url = f"postgresql://ingest:s3cret@127.0.0.1:{closed_port}/ingest"
    env = ingest_env(data_dir, url, INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}")
    env["INGEST_HTTP_LISTEN"] = "off"
    log_path = data_dir / "serve.log"
    server = _serve(env, log_path)
    try:
        wait_for(lambda: _event(log_path, "waiting for dependencies") is not None, "a warning")
        listening = _event(log_path, "listening")
        assert listening is not None
        assert str(listening["lmtp"]).startswith("127.0.0.1:")
        assert _event(log_path, "ready") is None
        waiting = _event(log_path, "waiting for dependencies")
        assert waiting is not None
        assert waiting["postgres"] == "connection refused"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert "s3cret" not in log_path.read_text()


def test_ready_carries_the_setup_without_secrets(data_dir: Path, pg_url: str) -> None:
    env = ingest_env(data_dir, pg_url, INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}")
    env["INGEST_HTTP_LISTEN"] = "off"
    log_path = data_dir / "serve.log"
    server = _serve(env, log_path)
    try:
        wait_for(lambda: _event(log_path, "ready") is not None, "ready")
        ready = _event(log_path, "ready")
        assert ready is not None
        assert ready["data_dir"] == str(data_dir)
        assert "database" in ready
        assert ready["object_store"] == str(data_dir / "objects")
        assert ready["queue"] == str(data_dir / "queue.db")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def _postmaster_running(pg_dir: Path) -> bool:
    return (pg_dir / "postmaster.pid").exists()


def test_a_second_sigterm_still_releases_the_embedded_database(data_dir: Path) -> None:
    env = ingest_env(data_dir, "", INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}")
    del env["INGEST_DATABASE_URL"]
    env["INGEST_HTTP_LISTEN"] = "off"
    assert run_ingest(env, "db", "upgrade").returncode == 0
    assert not _postmaster_running(data_dir / "pg")  # released at exit
    log_path = data_dir / "serve.log"
    server = _serve(env, log_path)
    try:
        wait_for(lambda: _event(log_path, "ready") is not None, "ready", limit_s=120)
        assert _postmaster_running(data_dir / "pg")
        server.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert not _postmaster_running(data_dir / "pg")


def test_serving_freezes_start_up_objects_and_collects_young_ones_less_often() -> None:
    """In a fresh interpreter (freezing is for the whole process)."""
    code = (
        "import gc\n"
        "from lmtpd.cli.serve import GC_YOUNG_THRESHOLD, settle_garbage_collector\n"
        "before = gc.get_threshold()\n"
        "settle_garbage_collector()\n"
        "assert gc.get_freeze_count() > 0, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:]), gc.get_threshold()\n"
        "assert GC_YOUNG_THRESHOLD > before[0]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
