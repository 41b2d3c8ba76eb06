"""Child processes the tests start, stop and kill (session fixtures, fault
scenarios, serve-process tests): `ingest serve`, `ingest worker`, one-shot
`ingest` commands, a moto S3 server and redis-server.

Every wait is a poll with a generous deadline: the deadline only turns a hang
into a failure, it never decides an outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

REPO = Path(__file__).resolve().parents[1]  # the checkout (this file is tests/procs.py)
START_LIMIT_S = 60.0
DOMAIN = "orders.example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(ready: Callable[[], bool], what: str, limit_s: float = START_LIMIT_S) -> None:
    """Poll until ``ready()``; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit_s} s")
        time.sleep(0.02)


def ingest_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of an `ingest` child: our variables only, none inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AWS_"))}
    # the suite's loopback DNS stub (tests/conftest.py), never the machine's resolver
    if "INGEST_DNS_SERVERS" in os.environ:
        env["INGEST_DNS_SERVERS"] = os.environ["INGEST_DNS_SERVERS"]
    env.update(
        INGEST_DATA_DIR=str(data_dir),
        INGEST_DATABASE_URL=database_url,
        INGEST_DOMAINS=DOMAIN,
        INGEST_LOG_FORMAT="json",
        INGEST_STORE_TIMEOUT_S="3",
        # never the fixed default ports: a busy port is fatal to `ingest serve`
        INGEST_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        INGEST_API_LISTEN="off",
    )
    env.update(extra)
    return env


def run_ingest(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A one-shot `ingest` command (sweep, tenants, …); output captured."""
    return subprocess.run(
        [sys.executable, "-m", "lmtpd.cli", *args],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Child:
    """One long-running child process with its output in a log file."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self, what: str) -> bool:
        """True while the process runs (or before it started); raises once it exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{what} exited with {self.process.returncode}:\n{tail}")
        return True

    def kill9(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class IngestServer(Child):
    """`ingest serve --no-milter` on a fixed port (kept across restarts)."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        env = {**env, "INGEST_LMTP_LISTEN": f"127.0.0.1:{self.port}"}
        super().__init__([sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter"], env, log_path)

    def start(self) -> None:
        super().start()
        wait_for(self._greets, "ingest serve to greet")

    def _greets(self) -> bool:
        self.check_alive("ingest serve")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                return conn.recv(4).startswith(b"220")
        except OSError:
            return False


class IngestWorker(Child):
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        argv = [sys.executable, "-m", "lmtpd.cli", "worker", "-w", "1"]
        super().__init__(argv, env, log_path)


# ------------------------------------------------------------------------- S3


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class MotoServer(Child):
    """A moto S3 server of our own, so a test may pause or kill it."""

    def __init__(self, log_path: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        script = Path(sys.executable).with_name("moto_server")
        argv = ([str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]) + [
            "-H",
            host,
            "-p",
            str(self.port),
        ]
        super().__init__(argv, {**os.environ}, log_path)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        super().start()
        wait_for(lambda: self._up(), "moto_server to answer")

    def _up(self) -> bool:
        self.check_alive("moto_server")
        return _http_ok(f"{self.endpoint}/moto-api/")

    def create_bucket(self, bucket: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }


# ---------------------------------------------------------------------- redis


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer(Child):
    def __init__(self, log_path: Path, folder: Path, port: int) -> None:
        binary = redis_binary()
        assert binary is not None
        self.port = port
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
        super().__init__(argv, {**os.environ}, log_path)

    def start(self) -> None:
        super().start()
        wait_for(self._pings, "redis-server to answer PING")

    def _pings(self) -> bool:
        self.check_alive("redis-server")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
        ):
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False
