"""`ingest serve --processes 2` as real processes on real sockets: both serving
processes take deliveries and the supervisor's /metrics counts them all; SIGTERM
stops everything with exit code 0; a child killed with SIGKILL is replaced while
mail keeps flowing; a unix: listener (and the embedded database the supervisor
starts) works the same way."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import DOMAIN, REPO, free_port, ingest_env, run_ingest, wait_for
from tests.server.http_client import sample
from tests.server.test_milter import MilterClient, open_stream

if TYPE_CHECKING:
    from pathlib import Path

CONNECTIONS = 8
PER_CONNECTION = 5


class Supervised:
    """`ingest serve --processes 2` (``--no-milter`` unless ``milter`` is its listen
    address) with its JSON log in a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, lmtp: str, *, milter: str | None = None
    ) -> None:
        self.http_port = free_port()
        self.lmtp = lmtp
        self.log_path = log_path
        env = {
            **env,
            "INGEST_LMTP_LISTEN": lmtp,
            "INGEST_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
        }
        argv = [sys.executable, "-m", "lmtpd.cli", "serve", "--processes", "2"]
        if milter is None:
            argv.append("--no-milter")
        else:
            env["INGEST_MILTER_LISTEN"] = milter
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def lines(self) -> list[dict[str, object]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def events(self, event: str) -> list[dict[str, object]]:
        return [entry for entry in self.lines() if entry.get("event") == event]

    def wait_ready(self, count: int = 1) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise AssertionError(f"ingest serve exited with {self.process.returncode}:\n{tail}")
            return len(self.events("lmtp process ready")) >= count and bool(self.events("ready"))

        wait_for(ready, "ingest serve --processes 2 to be ready")

    def child_pids(self) -> dict[int, int]:
        """The latest pid of each child index."""
        return {int(e["child"]): int(e["pid"]) for e in self.events("lmtp process started")}

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def accepted(self) -> float:
        status, body = self.get("/metrics")
        assert status == 200
        for family in text_string_to_metric_families(body.decode()):
            if family.name == "ingest_lmtp_recipients":
                return sum(s.value for s in family.samples if s.labels["outcome"] == "accepted")
        return 0.0

    def metric(self, name: str, **labels: str) -> float | None:
        status, body = self.get("/metrics")
        assert status == 200
        return sample(body.decode(), name, **labels)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.child_pids().values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _connect(lmtp: str) -> smtplib.LMTP:
    if lmtp.startswith("unix:"):
        return smtplib.LMTP(lmtp[len("unix:") :], timeout=30)
    host, _, port = lmtp.rpartition(":")
    return smtplib.LMTP(host, int(port), timeout=30)


def _deliver(lmtp: str, tag: str, count: int) -> int:
    """``count`` messages over one connection; how many got 250."""
    accepted = 0
    with _connect(lmtp) as client:
        client.ehlo()
        for n in range(count):
            client.mail("buyer@example.org")
            assert client.rcpt(f"orders+acme@{DOMAIN}")[0] == 250
            body = f"Message-ID: <{tag}-{n}@b.example>\r\nSubject: {n}\r\n\r\nhi\r\n"
            code, _ = client.data(body.encode())
            accepted += code == 250
    return accepted


def _deliver_round(lmtp: str, label: str) -> int:
    """CONNECTIONS connections at once, PER_CONNECTION messages each."""
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        futures = [
            pool.submit(_deliver, lmtp, f"{label}-{i}", PER_CONNECTION) for i in range(CONNECTIONS)
        ]
        return sum(future.result() for future in futures)


def _serving_processes(server: Supervised) -> set[object]:
    return {entry.get("process") for entry in server.events("transaction done")}


def test_two_processes_share_the_deliveries_and_the_metrics_count_them_all(
    data_dir: Path, pg_url: str
) -> None:
    env = ingest_env(data_dir, pg_url)
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    server = Supervised(env, data_dir / "serve.log", f"127.0.0.1:{free_port()}")
    try:
        server.wait_ready(2)
        status, body = server.get("/readyz")
        assert status == 200
        assert json.loads(body)["lmtp"] == {"ok": True, "processes": 2, "up": 2}

        delivered = _deliver_round(server.lmtp, "round-0")
        assert delivered == CONNECTIONS * PER_CONNECTION
        # Which process accepts a connection is the kernel's choice: deliver more
        # rounds until both have served (a hang guard, not a timing assertion).
        for round_ in range(1, 20):
            if _serving_processes(server) >= {0, 1}:
                break
            delivered += _deliver_round(server.lmtp, f"round-{round_}")
        assert _serving_processes(server) == {0, 1}

        wait_for(lambda: server.accepted() == delivered, f"/metrics to count {delivered}")
        status, body = server.get("/metrics")
        text = body.decode()
        assert "ingest_serve_processes_up 2.0" in text
        assert "ingest_queue_depth" in text  # the supervisor's own scrape-time values
        children = server.child_pids()
        assert server.stop() == 0
        assert not any(_alive(pid) for pid in children.values())
        assert server.events("lmtp process stopped")
    finally:
        server.kill()


def test_a_killed_child_is_restarted_and_mail_keeps_flowing(data_dir: Path, pg_url: str) -> None:
    env = ingest_env(data_dir, pg_url)
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    server = Supervised(env, data_dir / "serve.log", f"127.0.0.1:{free_port()}")
    try:
        server.wait_ready(2)
        before = _deliver_round(server.lmtp, "before")
        wait_for(lambda: server.accepted() == before, "/metrics to count the first round")
        victim = server.child_pids()[0]
        os.kill(victim, signal.SIGKILL)

        wait_for(lambda: server.child_pids()[0] != victim, "child 0 to be started again")
        server.wait_ready(3)
        wait_for(lambda: not _alive(victim), "the killed child to be reaped")
        assert server.events("lmtp process exited; restarting")[0]["child"] == 0
        after = _deliver_round(server.lmtp, "after")
        assert after == CONNECTIONS * PER_CONNECTION
        # The killed child's counts stay in the merged counter.
        wait_for(lambda: server.accepted() == before + after, "/metrics to count both rounds")
        wait_for(lambda: server.get("/readyz")[0] == 200, "/readyz with both children up")
        assert server.stop() == 0
    finally:
        server.kill()


def test_unix_listener_with_the_embedded_database(data_dir: Path, pg_url: str) -> None:
    env = ingest_env(data_dir, pg_url)
    del env["INGEST_DATABASE_URL"]  # the supervisor starts the embedded server
    assert run_ingest(env, "db", "upgrade").returncode == 0
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    server = Supervised(env, data_dir / "serve.log", f"unix:{data_dir / 'lmtp.sock'}")
    try:
        server.wait_ready(2)
        assert _deliver_round(server.lmtp, "unix") == CONNECTIONS * PER_CONNECTION
        assert server.stop() == 0
    finally:
        server.kill()


def test_both_processes_serve_the_milter_on_the_shared_listener(
    data_dir: Path, pg_url: str
) -> None:
    env = ingest_env(data_dir, pg_url)
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    milter = f"127.0.0.1:{free_port()}"
    server = Supervised(env, data_dir / "serve.log", f"127.0.0.1:{free_port()}", milter=milter)

    async def ask(recipients: list[str]) -> list[bytes]:
        async with trio.open_nursery() as nursery:
            replies: list[bytes] = []

            async def one(recipient: str) -> None:
                async with await open_stream(milter) as stream:
                    client = MilterClient(stream)
                    await client.negotiate()
                    (reply,) = await client.transaction(recipient)
                    replies.append(reply.kind)

            for recipient in recipients:
                nursery.start_soon(one, recipient)
        return replies

    try:
        server.wait_ready(2)
        assert len(server.events("milter listening")) == 2
        known, unknown = f"orders+acme@{DOMAIN}", f"orders+nobody@{DOMAIN}"
        replies = trio.run(ask, [known] * 10 + [unknown] * 10)
        assert sorted(replies) == [b"c"] * 10 + [b"y"] * 10
        accepted = {"outcome": "accepted", "reason": "ok", "tenant": "acme"}
        wait_for(
            lambda: server.metric("ingest_milter_recipients_total", **accepted) == 10,
            "/metrics to count the milter's answers",
        )
        assert server.stop() == 0
    finally:
        server.kill()
